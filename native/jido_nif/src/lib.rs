//! `jido_nif` — the rustler binding of [`jido_core`] for the Elixir module
//! `JidoCode.Native`.
//!
//! This crate holds no logic of its own. Each NIF decodes its arguments, calls
//! one core function, and encodes the result as `{:ok, value}` / `:ok` /
//! `{:error, reason}` ([`error`]). It also picks the scheduler:
//!
//! * `DirtyCpu` — parse, canonicalize, sign, verify of whole documents;
//! * `DirtyIo` — file and directory system calls (reads, atomic writes with
//!   fsync, directory walks);
//! * normal — O(1) in-memory work (the rate limiter's check).
//!
//! Wrong argument *types* are programmer errors and raise `ArgumentError`
//! (badarg); bad *data* (a tampered file, invalid UTF-8, a swapped directory)
//! is always an error tuple. A panic is caught by rustler and raised as
//! `:nif_panicked`; it never takes the VM down.

mod atoms;
mod crypto;
mod error;
mod files;
mod json;
mod lock;
mod path;
mod rate_limit;
mod terms;

rustler::init!("Elixir.JidoCode.Native");
