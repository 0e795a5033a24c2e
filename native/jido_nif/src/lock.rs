//! Resume-lock NIFs: an exclusive advisory lock on a session file, held from
//! load to delete so two resumers (even in two OS processes) never both win.

use crate::crypto::{path_of, KeyResource};
use crate::error::{Done, NifResult};
use crate::files::{load_verified, unsigned_files};
use jido_core::session::Limits;
use jido_core::session_lock::{self, LockedSession};
use jido_core::Error;
use rustler::{Atom, Binary, Env, ResourceArc, Term};
use std::sync::Mutex;

/// A held lock. `None` once released or removed; the lock is also released
/// when the resource is garbage-collected.
pub struct LockResource(Mutex<Option<LockedSession>>);

#[rustler::resource_impl]
impl rustler::Resource for LockResource {}

impl LockResource {
    /// Runs `f` on the held lock, or reports that it is gone.
    fn with<T>(&self, f: impl FnOnce(&mut Option<LockedSession>) -> NifResult<T>) -> NifResult<T> {
        // A poisoned mutex only means an earlier call panicked mid-way; the
        // Option inside is still meaningful.
        let mut guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }
}

/// `session_lock(path) :: {:ok, lock} | {:error, :locked | :not_found | :symlink | ...}`
#[rustler::nif(schedule = "DirtyIo")]
fn session_lock(path: Binary) -> NifResult<ResourceArc<LockResource>> {
    let locked = session_lock::lock(path_of(&path))?;
    Ok(ResourceArc::new(LockResource(Mutex::new(Some(locked)))))
}

/// `session_lock_load(lock, key, max_file_size, max_depth, allow_unsigned?)` —
/// as `session_load/5`, reading the locked file.
#[rustler::nif(schedule = "DirtyCpu")]
fn session_lock_load<'a>(
    env: Env<'a>,
    lock: ResourceArc<LockResource>,
    key: ResourceArc<KeyResource>,
    max_file_size: u64,
    max_depth: usize,
    allow_unsigned: bool,
) -> NifResult<(Term<'a>, Atom, u64)> {
    let limits = Limits {
        max_file_size,
        max_depth,
    };
    // Only the read needs the lock's mutex; parse and verify run after it.
    let bytes = lock.with(|held| match held {
        Some(locked) => Ok(locked.read(limits)?),
        None => Err(Error::NotFound.into()),
    })?;
    load_verified(env, bytes, &key.0, limits, unsigned_files(allow_unsigned))
}

/// `session_lock_remove(lock) :: :ok | {:error, reason}` — deletes the locked
/// file (only if the path still names it) and releases the lock.
#[rustler::nif(schedule = "DirtyIo")]
fn session_lock_remove(lock: ResourceArc<LockResource>) -> Done {
    lock.with(|held| match held.take() {
        Some(locked) => Ok(locked.remove()?),
        None => Err(Error::NotFound.into()),
    })
    .into()
}

/// `session_lock_release(lock) :: :ok` — releases the lock, keeping the file.
/// Idempotent.
#[rustler::nif]
fn session_lock_release(lock: ResourceArc<LockResource>) -> Done {
    lock.with(|held| {
        drop(held.take());
        Ok(())
    })
    .into()
}

/// `recover_set_aside_files(dir) :: {:ok, handled} | {:error, reason}` — puts
/// back (or deletes, when a newer file took the name) session files that a
/// `session_lock_remove` interrupted by a crash left set aside. Start-up only.
#[rustler::nif(schedule = "DirtyIo")]
fn recover_set_aside_files(dir: Binary) -> NifResult<usize> {
    Ok(session_lock::recover_set_aside(path_of(&dir))?)
}
