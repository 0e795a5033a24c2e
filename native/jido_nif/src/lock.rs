//! Resume-lock NIFs: an exclusive advisory lock on a session file, held from
//! load to delete so two resumers (even in two OS processes) never both win.

use crate::crypto::{path_of, KeyResource};
use crate::error::{Done, NifResult};
use crate::files::{loaded_term, unsigned_files};
use jido_core::session::Limits;
use jido_core::session_lock::{self, LockedSession, SetAside};
use jido_core::Error;
use rustler::{Atom, Binary, Env, ResourceArc, Term};
use std::sync::Mutex;

/// A held lock: on the file under its name, then (after
/// `session_lock_set_aside`) on the file kept aside. Released when removed,
/// discarded, restored or released — or when the resource is
/// garbage-collected, which leaves a set-aside file aside for start-up
/// recovery, exactly as a crash would.
pub struct LockResource(Mutex<Held>);

/// What a [`LockResource`] holds.
#[derive(Default)]
enum Held {
    Locked(LockedSession),
    Aside(SetAside),
    #[default]
    Released,
}

#[rustler::resource_impl]
impl rustler::Resource for LockResource {}

impl LockResource {
    /// Runs `f` on the held lock, or reports that it is gone.
    fn with<T>(&self, f: impl FnOnce(&mut Held) -> NifResult<T>) -> NifResult<T> {
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
    Ok(ResourceArc::new(LockResource(Mutex::new(Held::Locked(
        locked,
    )))))
}

/// `session_lock_load(lock, key, max_file_size, max_depth, allow_unsigned?)` —
/// as `session_load/5`, reading the locked file (`LockedSession::load`).
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
    // The mutex is held through the parse: the process that took the lock
    // loads it before handing it on, so no other call on it waits meanwhile.
    let loaded = lock.with(|held| match held {
        Held::Locked(locked) => Ok(locked.load(&key.0, limits, unsigned_files(allow_unsigned))?),
        _ => Err(Error::NotFound.into()),
    })?;
    Ok(loaded_term(env, loaded))
}

/// `session_lock_remove(lock) :: :ok | {:error, reason}` — deletes the locked
/// file (only if the path still names it) and releases the lock.
#[rustler::nif(schedule = "DirtyIo")]
fn session_lock_remove(lock: ResourceArc<LockResource>) -> Done {
    lock.with(|held| match std::mem::take(held) {
        Held::Locked(locked) => Ok(locked.remove()?),
        other => {
            *held = other;
            Err(Error::NotFound.into())
        }
    })
    .into()
}

/// `session_lock_set_aside(lock) :: :ok | {:error, reason}` — moves the
/// locked file to its private aside name and keeps it there, still locked,
/// until `session_lock_discard/1` or `session_lock_restore/1`.
#[rustler::nif(schedule = "DirtyIo")]
fn session_lock_set_aside(lock: ResourceArc<LockResource>) -> Done {
    lock.with(|held| match std::mem::take(held) {
        Held::Locked(locked) => {
            *held = Held::Aside(locked.set_aside()?);
            Ok(())
        }
        other => {
            *held = other;
            Err(Error::NotFound.into())
        }
    })
    .into()
}

/// `session_lock_discard(lock) :: :ok | {:error, reason}` — deletes a file
/// kept aside (the session was saved again) and releases the lock.
#[rustler::nif(schedule = "DirtyIo")]
fn session_lock_discard(lock: ResourceArc<LockResource>) -> Done {
    lock.with(|held| match std::mem::take(held) {
        Held::Aside(aside) => Ok(aside.discard()?),
        other => {
            *held = other;
            Err(Error::NotFound.into())
        }
    })
    .into()
}

/// `session_lock_restore(lock) :: :ok | {:error, reason}` — puts a file kept
/// aside back under its name (unless a newer file took it) and releases the
/// lock.
#[rustler::nif(schedule = "DirtyIo")]
fn session_lock_restore(lock: ResourceArc<LockResource>) -> Done {
    lock.with(|held| match std::mem::take(held) {
        Held::Aside(aside) => Ok(aside.restore()?),
        other => {
            *held = other;
            Err(Error::NotFound.into())
        }
    })
    .into()
}

/// `session_lock_release(lock) :: :ok` — releases the lock of a file still
/// under its name, keeping the file. A file kept aside stays held (release
/// it with `session_lock_discard/1` or `session_lock_restore/1`). Idempotent.
#[rustler::nif]
fn session_lock_release(lock: ResourceArc<LockResource>) -> Done {
    lock.with(|held| {
        if let Held::Locked(_) = held {
            *held = Held::Released;
        }
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
