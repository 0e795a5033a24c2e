//! `jido_core` — the security core of JidoCode's session store, in plain Rust.
//!
//! Nothing here knows about the BEAM: the `jido_nif` crate adapts these
//! functions to Erlang terms. Each module owns one concern:
//!
//! | module | concern |
//! |---|---|
//! | [`json`] | strict JSON document model: depth limit, duplicate-key refusal |
//! | [`canonical`] | RFC 8785 (JCS) canonical bytes |
//! | `emit` (private) | what both writers share: output buffering, the depth guard, numbers and strings |
//! | [`signing`] | HKDF key derivation, HMAC-SHA256 sign/verify, `key_id` |
//! | [`machine_secret`] | race-free creation and checking of the 32-byte secret |
//! | [`bounded_read`] | size-gated reads that never follow links or block |
//! | [`atomic_write`] | temp file + fsync + rename + directory fsync |
//! | [`path_guard`] | project-directory validation and descriptor pinning |
//! | [`beneath`] | the assistant's file operations, resolved beneath a pinned directory |
//! | [`rate_limit`] | sliding-window limiter with an injectable clock |
//! | [`session`] | the composition: load-and-verify, sign-and-write |
//! | [`listing`] | session metadata from a bounded prefix, for `list_persisted` |
//! | [`session_lock`] | one resumer per session: `flock` on the file's inode, load to delete |
//!
//! ```
//! use jido_core::{json, signing::{SigningKey, SignatureState}, machine_secret::MachineSecret};
//!
//! let key = SigningKey::derive(&MachineSecret::from_bytes([7; 32]), b"salt", Some("host"));
//! let mut doc = json::parse(br#"{"id":"x","n":1}"#, 64)?;
//! key.sign_document(&mut doc)?;
//! assert_eq!(key.verify_document(&doc)?, SignatureState::Signed);
//! # Ok::<(), jido_core::Error>(())
//! ```

pub mod atomic_write;
pub mod beneath;
pub mod bounded_read;
pub mod canonical;
mod emit;
pub mod error;
pub mod json;
pub mod listing;
pub mod machine_secret;
pub mod path_guard;
pub mod rate_limit;
pub mod session;
pub mod session_lock;
pub mod signing;

pub use error::{BeneathViolation, Error, PathViolation, Result};
