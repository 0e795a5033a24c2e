//! Conversion between the core's JSON [`Node`] trees and Erlang terms.
//!
//! Node → term: objects become maps with binary keys, arrays lists, strings
//! binaries, integers and floats numbers, `true`/`false`/`null` the atoms
//! `true`/`false`/`nil`. No atom is ever made from document data.
//!
//! Term → node: maps (atom or binary keys), lists, UTF-8 binaries, integers
//! within ±(2^53−1), floats, `true`/`false`/`nil`, other atoms as strings.
//! Everything else — tuples, pids, refs, funs, structs, improper lists,
//! invalid UTF-8, nesting over the limit — is refused with
//! `{:unsupported_term, detail}` instead of guessing an encoding.
//!
//! Neither direction copies string data it does not have to: a term's
//! binaries are borrowed for the duration of the call ([`from_term`]), and a
//! parsed document hands its long strings back as sub-binaries of the one
//! buffer it was parsed from and packed into ([`packed_to_term`]).

use crate::atoms;
use crate::error::NifError;
use jido_core::json::{self, Document, Node, Packed, Span};
use jido_core::Error;
use rustler::types::map::MapIterator;
use rustler::{Binary, Encoder, Env, ListIterator, NewBinary, ResourceArc, Term, TermType};
use std::borrow::Cow;

/// Strings up to this many bytes are copied into a heap binary; longer ones
/// become sub-binaries of the buffer they were parsed into. 64 bytes is the VM's
/// own limit for heap binaries (`ERL_ONHEAP_BIN_LIMIT`): below it a copy on
/// the process heap is smaller than a sub-binary header and keeps nothing
/// else alive.
const HEAP_BINARY_MAX: usize = 64;

/// Builds the Erlang term for a tree, copying every string into a new
/// binary.
pub fn to_term<'a, S: AsRef<str>>(env: Env<'a>, value: &Node<S>) -> Term<'a> {
    walk(env, value, &mut Copied)
}

/// The buffer of a packed document, handed to the VM so that the document's
/// strings can be sub-binaries of it instead of copies. Freed when the last
/// binary pointing into it is garbage-collected.
pub struct PackedBytes(Vec<u8>);

#[rustler::resource_impl]
impl rustler::Resource for PackedBytes {}

/// Builds the Erlang term for a packed document
/// ([`jido_core::json::parse_packed`]): its buffer becomes one binary, and
/// every string longer than [`HEAP_BINARY_MAX`] a sub-binary of it, with no
/// copy and no allocation of its own.
///
/// Memory trade-off: a sub-binary keeps the whole buffer alive for as long
/// as it lives, so keeping one long string of a loaded session keeps the
/// entire file in memory. That is acceptable here: a session's long strings
/// *are* most of its file, and they are kept together (the conversation) or
/// dropped together. Short strings are copied, so metadata kept on its own
/// (a name, an id) does not pin the file. A caller that wants to keep one
/// long string of a large document for long can `:binary.copy/1` it. (The
/// buffer is a resource binary, so `:binary.referenced_byte_size/1` reports
/// the resource's few bytes rather than the buffer; the process's binary heap
/// is charged the buffer's full size all the same.)
pub fn packed_to_term(env: Env<'_>, packed: Packed) -> Term<'_> {
    let Packed { bytes, root } = packed;
    // Moving the Vec into the resource moves no bytes: the spans of `root`
    // index the same heap buffer the binary points at.
    let buffer = ResourceArc::new(PackedBytes(bytes));
    let source = buffer.make_binary(env, |b| b.0.as_slice());
    walk(
        env,
        &root,
        &mut InPacked {
            bytes: &buffer.0,
            source,
        },
    )
}

/// How a walk turns one string of the tree into a binary term.
trait Strings<'a, S> {
    /// The bytes of `s`.
    fn bytes<'s>(&'s self, s: &'s S) -> &'s [u8];
    /// The binary for `s`.
    fn make(&mut self, env: Env<'a>, s: &S) -> Term<'a>;
}

/// Every string copied into a binary of its own.
struct Copied;

impl<'a, S: AsRef<str>> Strings<'a, S> for Copied {
    fn bytes<'s>(&'s self, s: &'s S) -> &'s [u8] {
        s.as_ref().as_bytes()
    }

    fn make(&mut self, env: Env<'a>, s: &S) -> Term<'a> {
        binary(env, s.as_ref().as_bytes())
    }
}

/// Strings of a packed document: sub-binaries of its buffer when long,
/// copies when short.
struct InPacked<'p, 'a> {
    bytes: &'p [u8],
    source: Binary<'a>,
}

impl<'a> Strings<'a, Span> for InPacked<'_, 'a> {
    fn bytes<'s>(&'s self, s: &'s Span) -> &'s [u8] {
        s.text(self.bytes)
    }

    fn make(&mut self, env: Env<'a>, s: &Span) -> Term<'a> {
        let shared = match s {
            Span::At { start, len } if *len > HEAP_BINARY_MAX => {
                self.source.make_subbinary(*start, *len).ok()
            }
            _ => None,
        };
        match shared {
            Some(sub) => sub.to_term(env),
            None => binary(env, self.bytes(s)),
        }
    }
}

fn walk<'a, S, M: Strings<'a, S>>(env: Env<'a>, value: &Node<S>, strings: &mut M) -> Term<'a> {
    Walk {
        env,
        strings,
        keys: KeyCache::default(),
        stack: Vec::new(),
    }
    .term(value)
}

struct Walk<'a, 'm, M> {
    env: Env<'a>,
    strings: &'m mut M,
    keys: KeyCache<'a>,
    /// The terms of the elements (or the keys, then the values) of the
    /// containers being built, as one stack shared by every level: a
    /// container pushes its children above its ancestors', builds itself from
    /// that slice and pops them, so no container needs vectors of its own.
    stack: Vec<Term<'a>>,
}

impl<'a, M> Walk<'a, '_, M> {
    fn term<S>(&mut self, value: &Node<S>) -> Term<'a>
    where
        M: Strings<'a, S>,
    {
        let env = self.env;
        match value {
            Node::Null => atoms::nil().encode(env),
            Node::Bool(b) => b.encode(env),
            Node::Integer(i) => i.encode(env),
            Node::Float(f) => f.encode(env),
            Node::String(s) => self.strings.make(env, s),
            Node::Array(items) => {
                let start = self.stack.len();
                for item in items {
                    let term = self.term(item);
                    self.stack.push(term);
                }
                let list = self.stack[start..].encode(env);
                self.stack.truncate(start);
                list
            }
            Node::Object(members) => {
                let start = self.stack.len();
                for (k, _) in members {
                    let key = self.key(k);
                    self.stack.push(key);
                }
                for (_, v) in members {
                    let term = self.term(v);
                    self.stack.push(term);
                }
                let (keys, values) = self.stack[start..].split_at(members.len());
                // Keys are unique (the parser refuses duplicates), so this
                // cannot fail; fall back to an empty map rather than panic if
                // it ever did.
                let map = Term::map_from_term_arrays(env, keys, values)
                    .unwrap_or_else(|_| rustler::types::map::map_new(env));
                self.stack.truncate(start);
                map
            }
        }
    }

    /// The binary for an object key, shared with earlier equal keys.
    fn key<S>(&mut self, k: &S) -> Term<'a>
    where
        M: Strings<'a, S>,
    {
        if let Some(term) = self.keys.get(self.strings.bytes(k)) {
            return term;
        }
        let term = self.strings.make(self.env, k);
        self.keys.put(self.strings.bytes(k), term);
        term
    }
}

/// The binaries made for recent object keys, so that the keys every message
/// of a conversation repeats (`"role"`, `"content"`, ...) become one binary
/// shared by all its maps instead of one copy per map: fewer words on the
/// heap to build, and to copy at every garbage collection after. Terms are
/// immutable, so sharing is invisible to Erlang code.
///
/// A small direct-mapped table: a miss (a new key, or two keys sharing a
/// slot) only costs a binary, as without the cache.
struct KeyCache<'a> {
    slots: [Option<(Box<[u8]>, Term<'a>)>; KEY_SLOTS],
}

const KEY_SLOTS: usize = 64;

impl Default for KeyCache<'_> {
    fn default() -> Self {
        Self {
            slots: [const { None }; KEY_SLOTS],
        }
    }
}

impl<'a> KeyCache<'a> {
    /// Only short keys are cached: long ones are rare as keys and would be
    /// copied once more into the cache.
    const MAX_LEN: usize = 32;

    fn slot(bytes: &[u8]) -> Option<usize> {
        let (&first, &last) = (bytes.first()?, bytes.last()?);
        if bytes.len() > Self::MAX_LEN {
            return None;
        }
        let hash = bytes.len() * 31 + usize::from(first) * 7 + usize::from(last);
        Some(hash % KEY_SLOTS)
    }

    fn get(&self, key: &[u8]) -> Option<Term<'a>> {
        match &self.slots[Self::slot(key)?] {
            Some((cached, term)) if **cached == *key => Some(*term),
            _ => None,
        }
    }

    fn put(&mut self, key: &[u8], term: Term<'a>) {
        if let Some(slot) = Self::slot(key) {
            self.slots[slot] = Some((key.into(), term));
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

/// Converts an Erlang term to a document, refusing anything that has no
/// faithful JSON form, with the JSON model's rules (integers within
/// ±(2^53−1), unique keys) taken from the core. Strings borrow the term's
/// binaries (valid for the whole NIF call) instead of copying them; only
/// atoms are converted to new strings.
///
/// The conversion recurses once per level, so `max_depth` — a NIF argument,
/// hence anything — is clamped with [`json::clamp_depth`] as every parser
/// clamps it: terms can be arbitrarily deep, a dirty scheduler's stack is
/// not (a 400-deep list converted under `max_depth` 1,000,000 overflowed it
/// and killed the VM). Nothing deeper could be written anyway.
///
/// # Errors
/// `Error::Unrepresentable` (→ `{:unsupported_term, detail}`).
pub fn from_term(term: Term<'_>, max_depth: usize) -> Result<Document<'_>, NifError> {
    convert(term, json::clamp_depth(max_depth))
        .map_err(|what| NifError::from(Error::Unrepresentable(what)))
}

fn convert(term: Term<'_>, depth_left: usize) -> Result<Document<'_>, &'static str> {
    match term.get_type() {
        TermType::Atom => Ok(atom_value(term)?),
        TermType::Binary => Ok(Node::String(Cow::Borrowed(text_of(
            term,
            "bitstring that is not a binary",
            "binary is not valid UTF-8",
        )?))),
        TermType::Integer => {
            let i: i64 = term.decode().map_err(|_| "integer outside ±(2^53-1)")?;
            if !json::is_safe_integer(i) {
                return Err("integer outside ±(2^53-1)");
            }
            Ok(Node::Integer(i))
        }
        TermType::Float => Ok(Node::Float(term.decode().map_err(|_| "float")?)),
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
            Ok(Node::Array(items))
        }
        TermType::Map => {
            let depth_left = descend(depth_left)?;
            let iter = MapIterator::new(term).ok_or("map")?;
            let mut members = Vec::with_capacity(term.map_size().unwrap_or(0));
            for (k, v) in iter {
                let key = match k.get_type() {
                    TermType::Atom => Cow::Owned(k.atom_to_string().map_err(|_| "map key atom")?),
                    TermType::Binary => Cow::Borrowed(text_of(
                        k,
                        "map key bitstring",
                        "map key is not valid UTF-8",
                    )?),
                    _ => return Err("map key that is neither an atom nor a binary"),
                };
                if key == "__struct__" {
                    return Err("struct (convert it to a plain map or string first)");
                }
                members.push((key, convert(v, depth_left)?));
            }
            // `%{:name => 1, "name" => 2}` would make a JSON object with a
            // duplicate key, which the parser refuses on load.
            if json::duplicate_key_in(&members).is_some() {
                return Err("map has the same key as an atom and as a binary");
            }
            Ok(Node::Object(members))
        }
        TermType::Tuple => Err("tuple"),
        TermType::Pid => Err("pid"),
        TermType::Port => Err("port"),
        TermType::Ref => Err("reference"),
        TermType::Fun => Err("fun"),
        TermType::Unknown => Err("unknown term type"),
    }
}

/// The text of a binary term, borrowed for the lifetime of the term.
fn text_of<'a>(
    term: Term<'a>,
    not_binary: &'static str,
    not_utf8: &'static str,
) -> Result<&'a str, &'static str> {
    let bin = Binary::from_term(term).map_err(|_| not_binary)?;
    std::str::from_utf8(bin.as_slice()).map_err(|_| not_utf8)
}

fn descend(depth_left: usize) -> Result<usize, &'static str> {
    depth_left.checked_sub(1).ok_or("nesting too deep")
}

fn atom_value(term: Term<'_>) -> Result<Document<'_>, &'static str> {
    let name = term.atom_to_string().map_err(|_| "atom")?;
    Ok(match name.as_str() {
        "true" => Node::Bool(true),
        "false" => Node::Bool(false),
        "nil" => Node::Null,
        _ => Node::String(Cow::Owned(name)),
    })
}
