//! Session metadata for `list_persisted`, read from a bounded prefix of each
//! file.
//!
//! Listing shows name, project and timestamps of every saved session. The
//! target is 1,000 sessions of 100 KB in ≤ 55 ms warm, *flat in conversation
//! size*: a session with a long conversation must cost a listing no more than
//! a fresh one. Reading and parsing whole files cannot meet that — 1,000 ×
//! 100 KB is 100 MB of JSON — so the listing relies on the layout that
//! [`session::save`] writes: the metadata members first
//! ([`session::MEMBER_ORDER`]), then unknown members, then the bulk arrays
//! ([`BULK_MEMBERS`]) and the signature. For each file [`read_metadata`]
//!
//! 1. opens it with [`bounded_read::open_regular`] (no symlinks, FIFOs,
//!    devices or directories; type and size from `fstat` of the descriptor)
//!    and refuses a size over `max_file_size` before reading anything;
//! 2. reads its first 4 KiB, and up to `prefix_len` bytes
//!    ([`DEFAULT_PREFIX_LEN`]) only if the metadata runs past them;
//! 3. parses the top-level object member by member with the rules of
//!    [`json::parse`] (depth limit, duplicate keys refused, integers within
//!    ±(2^53−1)) and **stops at the first bulk member or `signature`**, without
//!    parsing — or even looking at — the rest of the prefix.
//!
//! **Work per file is bounded by the file, not by its shape.** Duplicate
//! top-level keys are found by sorting, never by comparing every pair; a
//! document with more than [`session::MAX_MEMBERS`] top-level members is
//! refused as soon as the prefix shows one too many (the load refuses it
//! too), and every parse spends from the [`json::value_budget`] of the file's
//! size. So a hostile file of ten thousand top-level keys costs a listing
//! about what an ordinary session does, where comparing each new key with
//! every previous one cost 160 ms per 80 KB file.
//!
//! **When the full scan happens** ([`Layout::FullScan`]): if the prefix ends
//! before a bulk member or the closing brace (metadata larger than the
//! prefix, say a 100 KB name), or a bulk member comes before every
//! [`REQUIRED_METADATA`] member was seen (a file laid out otherwise, such as a
//! legacy file with sorted keys where `conversation` precedes `created_at`),
//! or the document does not start with `{`, the whole file is read (still
//! bounded by `max_file_size`), parsed with [`json::parse`] and its non-bulk
//! members kept. Only such files pay for their size.
//!
//! **What a listing does not check.** It never verifies the signature (the
//! listing shows metadata; [`session::load`] verifies before anything is
//! used), so [`Metadata`] carries no signature state — the signature is the
//! last member and a prefix cannot see it. On the prefix path the bytes after
//! the first bulk member are not parsed either: a file whose conversation is
//! corrupt is still listed, and refused when it is loaded. For the same
//! reason, members placed after the first bulk member, and a metadata key
//! repeated there, are not seen by the prefix path.
//!
//! ```no_run
//! use jido_core::{listing, session::Limits};
//!
//! let dir = std::path::Path::new("/home/me/.jido_code/sessions");
//! for (name, result) in listing::list_dir(dir, Limits::default(), listing::DEFAULT_PREFIX_LEN)? {
//!     match result {
//!         Ok(meta) => println!("{name:?}: {:?}", meta.get("name")),
//!         Err(err) => eprintln!("{name:?}: {err}"),
//!     }
//! }
//! # Ok::<(), jido_core::Error>(())
//! ```

use std::ffi::OsString;
use std::fmt;
use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::SystemTime;

use serde::de::{self, MapAccess, Visitor};
use serde::Deserializer as _;

use crate::json::{self, Object, State, Value, ValueSeed};
use crate::{bounded_read, session, Error, Result};

/// The top-level members that hold a session's bulk; metadata ends at the
/// first of them.
pub const BULK_MEMBERS: [&str; 3] = ["conversation", "todos", "prompt_history"];

/// The metadata members the prefix path must have seen before the first bulk
/// member; otherwise the file is laid out differently and is scanned in full.
/// (`config` and `key_id` are optional.)
pub const REQUIRED_METADATA: [&str; 7] = [
    "version",
    "id",
    "name",
    "project_path",
    "created_at",
    "updated_at",
    "closed_at",
];

/// Default bound on the bytes read per file before falling back to the full
/// scan. The metadata of a saved session is well under 1 KiB; 64 KiB leaves
/// room for a long name, path or provider config.
pub const DEFAULT_PREFIX_LEN: usize = 64 * 1024;

/// The first read of every file: one page, which holds the metadata of any
/// ordinary session. The rest of the prefix is read only when the metadata
/// runs past it, so a listing copies ~4 KiB per file whatever the
/// conversation size (reading 64 KiB of each of 1,000 sessions of 100 KB was
/// measured to cost more than everything else together).
const FIRST_READ: usize = 4 * 1024;

/// The member that ends the metadata besides [`BULK_MEMBERS`]; never part of
/// [`Metadata::members`].
const SIGNATURE: &str = "signature";

/// How [`read_metadata`] obtained the metadata.
///
/// Not to be confused with [`json::Layout`], the whitespace style of a
/// written document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layout {
    /// From the bounded prefix, stopping at the first bulk member: the file
    /// was laid out as [`session::save`] writes it (or is entirely metadata).
    Prefix,
    /// From a bounded read and parse of the whole file.
    FullScan,
}

/// The metadata of one session file.
#[derive(Debug, Clone, PartialEq)]
pub struct Metadata {
    /// The top-level members other than [`BULK_MEMBERS`] and `signature`, in
    /// file order. On the [`Layout::Prefix`] path, only those before the
    /// first bulk member. Presence and types are not checked here: that is
    /// the caller's schema.
    pub members: Object,
    /// The file size reported by `fstat`.
    pub size: u64,
    /// The modification time reported by `fstat`.
    pub modified: SystemTime,
    /// Which path produced [`Metadata::members`].
    pub layout: Layout,
}

impl Metadata {
    /// The value of metadata member `key`, if present.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.members
            .iter()
            .find_map(|(k, v)| (k == key).then_some(v))
    }
}

/// Reads the metadata members of the session file at `path` from a prefix of
/// at most `prefix_len` bytes, or from the whole file when the prefix does
/// not hold them (see the [module documentation](self)).
///
/// No signature is verified and, on the prefix path, the bytes after the
/// first bulk member are not parsed.
///
/// # Errors
/// - Everything [`bounded_read::open_regular`] returns: [`Error::NotFound`],
///   [`Error::Symlink`], [`Error::NotRegularFile`] (FIFO, socket, device,
///   directory), [`Error::Io`].
/// - [`Error::FileTooLarge`] if `fstat` reports more than
///   `limits.max_file_size` bytes (nothing is read), or more arrive because
///   the file grew.
/// - [`Error::InvalidJson`] for a metadata member [`json::parse`] would
///   refuse (syntax, depth over `limits.max_depth`, duplicate key inside it,
///   integer out of range), a top-level metadata key that appears twice, or —
///   on the full scan — anything wrong anywhere in the file.
/// - [`Error::NotAnObject`] if the document is valid JSON but not an object.
/// - [`Error::Io`] with op `"read"`, `"seek"` or `"fstat"` on an I/O failure.
pub fn read_metadata(path: &Path, limits: session::Limits, prefix_len: usize) -> Result<Metadata> {
    let (mut file, stat) = bounded_read::open_regular(path)?;
    let limit = limits.max_file_size;
    let size = stat.len();
    if size > limit {
        return Err(Error::FileTooLarge { size, limit });
    }
    let modified = stat.modified().map_err(|e| Error::io("fstat", e))?;

    // Never read more than `limit + 1` bytes, even with a generous prefix:
    // the extra byte is how a file that grew past the limit is caught.
    let cap = prefix_len.min(usize::try_from(limit.saturating_add(1)).unwrap_or(usize::MAX));
    // Read one page first; only metadata that does not fit costs the rest of
    // the prefix. This keeps the bytes copied per file the same for a 10 KB
    // and a 10 MB session.
    let mut want = cap.min(FIRST_READ);
    let mut prefix = Vec::new();
    let (members, layout) = loop {
        let asked = want - prefix.len();
        let more = bounded_read::read_prefix(&mut file, asked)?;
        // A short read means end of file: the prefix is the whole file.
        let whole = more.len() < asked;
        if prefix.is_empty() {
            prefix = more;
        } else {
            prefix.extend_from_slice(&more);
        }
        if prefix.len() as u64 > limit {
            return Err(Error::FileTooLarge {
                size: prefix.len() as u64,
                limit,
            });
        }
        match parse_prefix(&prefix, whole, limits.max_depth, size)? {
            Prefix::Metadata(members) => break (members, Layout::Prefix),
            Prefix::RanOut if want < cap => want = cap,
            _ if whole => {
                break (
                    metadata_of_document(&prefix, limits.max_depth)?,
                    Layout::FullScan,
                );
            }
            _ => {
                drop(prefix);
                let bytes = read_whole(&mut file, &stat, limit)?;
                break (
                    metadata_of_document(&bytes, limits.max_depth)?,
                    Layout::FullScan,
                );
            }
        }
    };
    Ok(Metadata {
        members,
        size,
        modified,
        layout,
    })
}

/// Lists the session files of `dir`: every entry whose name ends in `.json`
/// and does not start with `.` (which leaves out the temp files of
/// [`crate::atomic_write`]), each with the result of [`read_metadata`],
/// sorted by file name.
///
/// A bad file is its own `Err` in the list and never fails the listing.
///
/// # Errors
/// [`Error::NotFound`] if `dir` does not exist; [`Error::Io`] with op
/// `"read_dir"` if it cannot be read (not a directory, no permission, an
/// error while iterating).
pub fn list_dir(
    dir: &Path,
    limits: session::Limits,
    prefix_len: usize,
) -> Result<Vec<(OsString, Result<Metadata>)>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io("read_dir", e))? {
        let name = entry.map_err(|e| Error::io("read_dir", e))?.file_name();
        let bytes = name.as_bytes();
        if bytes.ends_with(b".json") && !bytes.starts_with(b".") {
            names.push(name);
        }
    }
    names.sort_unstable();
    Ok(names
        .into_iter()
        .map(|name| {
            let result = read_metadata(&dir.join(&name), limits, prefix_len);
            (name, result)
        })
        .collect())
}

/// Whether the top-level member `key` ends the metadata.
fn ends_metadata(key: &str) -> bool {
    key == SIGNATURE || BULK_MEMBERS.contains(&key)
}

/// What a prefix says about the metadata.
enum Prefix {
    /// The metadata members: every member before the first bulk member (with
    /// all of [`REQUIRED_METADATA`] among them), or the whole object.
    Metadata(Object),
    /// The prefix ends before the metadata does; more bytes may settle it.
    RanOut,
    /// The document is laid out otherwise (a bulk member before the required
    /// metadata) or is not an object: only a full parse can say more.
    Elsewhere,
}

/// Parses the metadata members at the head of `prefix` of a file of `size`
/// bytes. `whole` says the prefix is the entire file, so running out of bytes
/// is a syntax error rather than a reason to read on.
fn parse_prefix(prefix: &[u8], whole: bool, max_depth: usize, size: u64) -> Result<Prefix> {
    // Anything but an object (or not JSON at all) is for the full parse to
    // name precisely; only bad files take that path.
    let first = prefix.iter().find(|b| !b.is_ascii_whitespace());
    match first {
        Some(b'{') => {}
        None if !whole => return Ok(Prefix::RanOut),
        _ => return Ok(Prefix::Elsewhere),
    }
    let mut state = State::new(max_depth, usize::try_from(size).unwrap_or(usize::MAX));
    let mut members = Object::new();
    let mut stopped = false;
    let mut de = serde_json::Deserializer::from_slice(prefix);
    let parsed = de
        .deserialize_map(TopLevel {
            state: &mut state,
            members: &mut members,
            stopped: &mut stopped,
        })
        .and_then(|()| de.end());
    // Members read so far are complete, so a key among them seen twice is a
    // final refusal whatever follows; so is an integer literal out of range
    // in the bytes parsed (a token cut off by the end of the prefix is not
    // judged).
    if let Some(key) = json::duplicate_key_in(&members) {
        return Err(Error::invalid_json(json::duplicate_key(key)));
    }
    if parsed.is_ok() || stopped {
        if let Some(refusal) = state.integer_literal_refusal(prefix, whole) {
            return Err(refusal);
        }
    }
    match parsed {
        // The closing brace: the object had no bulk member at all, and every
        // member it has was parsed.
        Ok(()) => Ok(Prefix::Metadata(members)),
        Err(_) if stopped => {
            let complete = REQUIRED_METADATA
                .iter()
                .all(|required| members.iter().any(|(k, _)| k == required));
            Ok(if complete {
                Prefix::Metadata(members)
            } else {
                Prefix::Elsewhere
            })
        }
        // Our refusals (depth, duplicate key, integer range, member cap,
        // value budget) concern bytes that were all there — except an integer
        // refused where the prefix ends in a digit: it may be the head of a
        // longer number, `90071992547409910` of the valid double
        // `90071992547409910.5` (caught by the listing_metadata fuzz check).
        // serde_json's errors are final only if there were no more bytes to
        // read (a cut-off prefix ends in mid-value).
        Err(err)
            if whole
                || (state.refused() && !(state.refused_integer() && ends_in_digit(prefix))) =>
        {
            Err(state.error(&err))
        }
        Err(_) => Ok(Prefix::RanOut),
    }
}

/// Whether a cut-off prefix may end inside a number literal, where an integer
/// refusal is not final.
fn ends_in_digit(prefix: &[u8]) -> bool {
    prefix.last().is_some_and(u8::is_ascii_digit)
}

/// Reads the whole of `file` (opened and `fstat`ed as `stat`) from the start.
fn read_whole(file: &mut File, stat: &std::fs::Metadata, limit: u64) -> Result<Vec<u8>> {
    file.seek(SeekFrom::Start(0))
        .map_err(|e| Error::io("seek", e))?;
    bounded_read::read_open(file, stat, limit)
}

/// The full scan: parses the whole document and keeps its metadata members.
fn metadata_of_document(bytes: &[u8], max_depth: usize) -> Result<Object> {
    match json::parse(bytes, max_depth)? {
        Value::Object(members) => {
            session::check_member_count(members.len())?;
            Ok(members
                .into_iter()
                .filter(|(k, _)| !ends_metadata(k))
                .collect())
        }
        _ => Err(Error::NotAnObject),
    }
}

/// Visits the top-level object, collecting members until one of
/// [`ends_metadata`] is reached.
struct TopLevel<'a> {
    state: &'a mut State,
    members: &'a mut Object,
    /// Set when the visit ended at a bulk member or the signature. Stopping is
    /// reported to serde_json as an error (a visitor cannot leave a map
    /// half-read otherwise); this flag tells it apart from a real one.
    stopped: &'a mut bool,
}

impl<'de> Visitor<'de> for TopLevel<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // The document itself is the first level, exactly as in json::parse.
        let depth = ValueSeed::new(self.state, 0).enter()?;
        while let Some(key) = map.next_key::<String>()? {
            if ends_metadata(&key) {
                *self.stopped = true;
                return Err(de::Error::custom("end of metadata"));
            }
            // The work budget of a file: a session has a dozen top-level
            // members. Refused here rather than after reading on, so ten
            // thousand keys cost no more than a page of them. (Duplicates
            // are found once, by sorting, in `parse_prefix`.)
            if self.members.len() == session::MAX_MEMBERS {
                return Err(self.state.refuse(session::too_many_members()));
            }
            let value = map.next_value_seed(ValueSeed::new(self.state, depth))?;
            self.members.push((key, value));
        }
        Ok(())
    }
}
