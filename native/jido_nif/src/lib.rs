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

/// Every Rust allocation of this library goes through the VM's allocator
/// (`enif_alloc`), as rustler's `allocator` feature would arrange.
///
/// Why: a session is read into a buffer of its own size, and glibc serves a
/// request of 10 MiB with a fresh `mmap` each time (it returns the previous
/// one to the kernel), so every load of a 10 MiB session took ~2,600 page
/// faults, a fifth of its time (measured: 2,790 faults per load before, ~200
/// after). The VM's allocators
/// keep freed carriers and reuse them. As a side effect the library's memory
/// shows in `:erlang.memory/0`.
#[global_allocator]
static ALLOCATOR: rustler::EnifAllocator = rustler::EnifAllocator;

rustler::init!("Elixir.JidoCode.Native");
