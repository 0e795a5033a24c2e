//! One resumer per session: an exclusive `flock` on the session file's inode,
//! held from load to delete.
//!
//! Resuming a session loads its file, starts the session and then deletes the
//! file. Two resumers of one session — two OS processes sharing a home, or two
//! calls in one VM — must not both get through, or the same conversation
//! would run twice. [`lock`] is the gate: it takes a non-blocking exclusive
//! advisory lock, and the loser gets [`Error::Locked`] at once (never a
//! wait). The Elixir layer reports it as `:resume_in_progress`.
//!
//! # The protocol
//!
//! 1. **Open the file** with [`bounded_read::open_regular`]: `O_NOFOLLOW |
//!    O_NONBLOCK`, `fstat`, regular files only. A symlink, FIFO or device is
//!    refused before any lock is taken, and a FIFO cannot hang the open.
//! 2. **`flock(LOCK_EX | LOCK_NB)`** on that descriptor; `EWOULDBLOCK` is
//!    [`Error::Locked`].
//! 3. **Check that the name still names the locked inode** (`statat` with
//!    `AT_SYMLINK_NOFOLLOW` through a descriptor of the parent directory,
//!    comparing device and inode with an `fstat` of ours). Between steps 1
//!    and 2 another resumer may have deleted the file (the name is then gone:
//!    [`Error::NotFound`]; our inode has a link count of zero), or a save may
//!    have replaced it by `rename` (the name now names a newer inode, which we
//!    did not lock): then everything is retried from step 1, up to three
//!    times, and a name that keeps changing is reported as [`Error::Locked`].
//! 4. **Read through the locked descriptor** ([`LockedSession::load`]),
//!    never by path: what is verified is the inode
//!    that is locked.
//! 5. **Delete only our inode** ([`LockedSession::remove`]), then `fsync` the
//!    directory so the delete survives a power cut — or **keep it aside**
//!    ([`LockedSession::set_aside`]): moved to a private name, still locked,
//!    until the resumed session's next save ([`SetAside::discard`]) or its
//!    stop ([`SetAside::restore`]); a crash leaves it for
//!    [`recover_set_aside`]. Dropping a [`LockedSession`] instead — a resume
//!    that failed — releases the lock and keeps the file.
//!
//! # Why the lock is on the inode, not on the name
//!
//! A session file is never modified in place: a save writes a new inode and
//! renames it over the name ([`crate::atomic_write`]), and a successful resume
//! unlinks it. A lock is held on an inode, so a lock taken on a file that has
//! since been deleted or replaced guards nothing — the next resumer opens the
//! name, gets a different inode, and locks it without contention. Steps 3 and
//! 5 close both gaps: a lock counts only if the name still names the locked
//! inode once the lock is held, and the delete happens only if it still does.
//! (A sibling lock file would avoid the check in step 3, but it is itself a
//! name that must be created, cleaned up and never deleted while held — the
//! same problem one file over, plus a second file per session.)
//!
//! # Saves do not take the lock
//!
//! A save of a session that is being resumed simply replaces the inode. The
//! resumer keeps reading its own (older) inode, and [`LockedSession::remove`]
//! then sees that the name no longer names it and refuses with
//! [`Error::Locked`], leaving the newer file in place: a stale resume never
//! deletes a newer save. Locking saves would not make this better — the save
//! would only be refused or delayed while the resume runs.
//!
//! `remove` cannot check-then-`unlink`: a save landing between the check and
//! the `unlink` would be deleted. Instead it renames whatever the name holds
//! to a private name (`.{name}.{16 hex}.removing`), checks *that* — nothing
//! else can reach it there — and unlinks it if it is ours or renames it back
//! (without replacing anything) if it is not. Only a crash in the middle
//! leaves such a file behind; it is a complete session file, never a partial
//! one. While a foreign file is set aside, for microseconds, its name is
//! absent: a concurrent load may see [`Error::NotFound`].
//!
//! # Limits
//!
//! - `flock` locks belong to an *open file description*: a second [`lock`] on
//!   the same file from the same process opens a new description and gets
//!   [`Error::Locked`], exactly as another process would. A duplicated
//!   descriptor (`dup`, `fork` without `exec`) would share the lock;
//!   descriptors here are `O_CLOEXEC` and never duplicated.
//! - The lock is advisory: it binds only code that takes it. Plain
//!   [`crate::session::load`] and deletes outside this module do not.
//! - On NFS, Linux emulates `flock` with POSIX record locks, which are
//!   per process: two resumes in one VM would then both get the lock. Keep
//!   the sessions directory on a local filesystem.
//!
//! ```no_run
//! use jido_core::machine_secret::MachineSecret;
//! use jido_core::session::{Limits, UnsignedFiles};
//! use jido_core::{session_lock, signing::SigningKey};
//! let key = SigningKey::derive(&MachineSecret::from_bytes([7; 32]), b"salt", None);
//! let mut locked = session_lock::lock("/home/me/.jido_code/sessions/abc.json".as_ref())?;
//! let loaded = locked.load(&key, Limits::default(), UnsignedFiles::Refuse)?;
//! // ... start the session from `loaded.document` ...
//! locked.remove()?; // or drop it to keep the file
//! # Ok::<(), jido_core::Error>(())
//! ```

use crate::atomic_write::{
    hidden_random_name, hidden_random_name_target, lock_abandoned, open_dir, parent_of,
};
use crate::bounded_read;
use crate::session::{self, Limits, Loaded, UnsignedFiles};
use crate::signing::SigningKey;
use crate::{Error, Result};
use rustix::fs::{AtFlags, FlockOperation, Stat};
use rustix::io::Errno;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Seek};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Opens of the file tried when a save keeps replacing it between our open
/// and our lock. Each retry needs a save to land in a window of a few
/// microseconds; three in a row mean something is rewriting the file
/// continuously, and the caller is better told "busy" than made to spin.
const LOCK_ATTEMPTS: usize = 3;

/// Suffix of the private name [`LockedSession::remove`] moves a file to
/// before deciding whether to delete it. Not `.tmp`: a save's cleanup of its
/// own stale temp files ([`crate::atomic_write::remove_stale_temp_files`])
/// must never delete a file that `remove` is about to put back.
const ASIDE_SUFFIX: &[u8] = b".removing";

/// A session file held under an exclusive `flock`, from [`lock`] until it is
/// removed or dropped.
///
/// Dropping it closes the descriptor, which releases the lock and keeps the
/// file.
#[derive(Debug)]
pub struct LockedSession {
    /// The locked descriptor; every read goes through it.
    file: File,
    /// The parent directory, opened once at [`lock`] time: the name check
    /// and the delete go through it, so they concern the same directory.
    dir: OwnedFd,
    /// The file's name in `dir`.
    name: OsString,
    /// The path given to [`lock`], for [`LockedSession::path`].
    path: PathBuf,
    /// Device of the locked inode.
    dev: u64,
    /// Number of the locked inode.
    ino: u64,
}

/// Opens the regular file at `path` and takes an exclusive, non-blocking
/// `flock` on it, making sure the lock is on the file the path names.
///
/// See the [module documentation](self) for the protocol.
///
/// # Errors
/// - [`Error::Locked`] if another process — or another [`LockedSession`] in
///   this process — holds the lock, or if a save replaced the file between
///   the open and the lock on every one of three attempts.
/// - [`Error::NotFound`] if the file (or its directory) does not exist,
///   including when another resumer deleted it between our open and our lock.
/// - [`Error::Symlink`], [`Error::NotRegularFile`] and the [`Error::Io`]
///   errors of [`bounded_read::open_regular`].
/// - [`Error::Io`] with op `"lock"` and kind `InvalidInput` if `path` has no
///   file name; op `"open_dir"`, `"flock"`, `"fstat"` or `"stat"` if that
///   step fails.
pub fn lock(path: &Path) -> Result<LockedSession> {
    let name = path.file_name().ok_or_else(|| {
        Error::io(
            "lock",
            io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"),
        )
    })?;
    let dir = open_dir(parent_of(path))?;
    for _ in 0..LOCK_ATTEMPTS {
        let (file, _) = bounded_read::open_regular(path)?;
        if let Some((dev, ino)) = lock_opened(&file, &dir, name)? {
            return Ok(LockedSession {
                file,
                dir,
                name: name.to_owned(),
                path: path.to_owned(),
                dev,
                ino,
            });
        }
    }
    Err(Error::Locked)
}

/// Steps 2 and 3 of the protocol on a file already opened from `dir`/`name`:
/// locks it and returns its (device, inode) if `name` still names it, or
/// `None` if the name now names another file (retry). On `None` or an error,
/// closing `file` releases the lock.
fn lock_opened(file: &File, dir: &OwnedFd, name: &OsStr) -> Result<Option<(u64, u64)>> {
    rustix::fs::flock(file, FlockOperation::NonBlockingLockExclusive).map_err(|e| match e {
        // `EWOULDBLOCK` and `EAGAIN` are one value on Linux.
        Errno::WOULDBLOCK => Error::Locked,
        other => Error::io("flock", other.into()),
    })?;
    let ours = rustix::fs::fstat(file).map_err(|e| Error::io("fstat", e.into()))?;
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(named) if file_id(&named) == file_id(&ours) => Ok(Some(file_id(&ours))),
        // Replaced by a save (our inode may have no link left), or deleted
        // and saved again: the name is a different file, which we did not
        // lock.
        Ok(_) => Ok(None),
        // Deleted after our open — by another resumer that finished while we
        // waited to lock (our inode's link count is then zero).
        Err(Errno::NOENT) => Err(Error::NotFound),
        Err(e) => Err(Error::io("stat", e.into())),
    }
}

impl LockedSession {
    /// The path this session was locked under.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads, parses and verifies the locked file: [`session::load`] on the
    /// locked descriptor instead of a path, with the same checks and the
    /// same `unsigned` policy.
    ///
    /// The whole file is read from its start each time, from the locked
    /// inode whatever the path names by now, under the size gate of
    /// [`bounded_read::read_open`]: the size from a fresh `fstat` must be at
    /// most `limits.max_file_size`, and at most one byte more is ever read.
    ///
    /// # Errors
    /// [`Error::FileTooLarge`]; [`Error::Io`] with op `"seek"`, `"fstat"` or
    /// `"read"` if that step fails; then those of [`session::load`] after
    /// reading.
    pub fn load(
        &mut self,
        key: &SigningKey,
        limits: Limits,
        unsigned: UnsignedFiles,
    ) -> Result<Loaded> {
        self.file.rewind().map_err(|e| Error::io("seek", e))?;
        let meta = self.file.metadata().map_err(|e| Error::io("fstat", e))?;
        let bytes = bounded_read::read_open(&mut self.file, &meta, limits.max_file_size)?;
        session::verify(bytes, key, limits, unsigned)
    }

    /// Deletes the locked file, if the path still names it, and `fsync`s the
    /// directory; the lock is released when `self` is dropped at the end.
    ///
    /// Never deletes a file that was not locked: whatever the name holds is
    /// first renamed to a private name, checked there, and renamed back —
    /// without replacing anything — if it is not ours (see the
    /// [module documentation](self)). It is [`LockedSession::set_aside`]
    /// followed by [`SetAside::discard`].
    ///
    /// # Errors
    /// Those of [`LockedSession::set_aside`], then op `"unlink"` or
    /// `"fsync_dir"` of [`SetAside::discard`].
    pub fn remove(self) -> Result<()> {
        self.set_aside()?.discard()
    }

    /// Moves the locked file to a private name (`.{name}.{16 hex}.removing`)
    /// if the path still names it, `fsync`s the directory, and keeps it
    /// there, still locked: the session's name is free (nothing lists or
    /// loads it) but the file survives until [`SetAside::discard`].
    ///
    /// This is what a resume keeps until the session's next successful save:
    /// a crash in between leaves the file aside, unlocked, and
    /// [`recover_set_aside`] puts it back at the next start.
    ///
    /// # Errors
    /// - [`Error::Locked`] if the path now names another file (a save
    ///   replaced ours while it was locked). That file is left in place, and
    ///   ours is gone with the name. If an even newer save took the name in
    ///   the meantime, the replaced file — superseded twice over — is deleted
    ///   rather than put back over it.
    /// - [`Error::NotFound`] if the path names nothing any more (the file was
    ///   deleted outside this protocol).
    /// - [`Error::Io`] with op `"random"`, `"rename"`, `"stat"` or
    ///   `"restore"` if that step fails; after `"rename"` the file is where it
    ///   was, after `"restore"` a foreign file is left under its `.removing`
    ///   name. Op `"fsync_dir"` if the directory `fsync` fails.
    pub fn set_aside(self) -> Result<SetAside> {
        let aside = aside_name(&self.name)?;
        match rustix::fs::renameat(&self.dir, &self.name, &self.dir, &aside) {
            Ok(()) => {}
            Err(Errno::NOENT) => return Err(Error::NotFound),
            Err(e) => return Err(Error::io("rename", e.into())),
        }
        // Nothing but us knows the random aside name, so what we stat is what
        // we keep or put back.
        let outcome = match rustix::fs::statat(&self.dir, &aside, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(moved) if file_id(&moved) == (self.dev, self.ino) => Ok(()),
            Ok(_) => put_back(&self.dir, &aside, &self.name).and(Err(Error::Locked)),
            // Unknown: keep whatever it is, as if the move had failed.
            Err(e) => put_back(&self.dir, &aside, &self.name).and(Err(Error::io("stat", e.into()))),
        };
        let synced = rustix::fs::fsync(&self.dir).map_err(|e| Error::io("fsync_dir", e.into()));
        // The outcome's own error, if any, says more than a failed `fsync`.
        outcome.and(synced)?;
        Ok(SetAside {
            _file: self.file,
            dir: self.dir,
            name: self.name,
            aside,
        })
    }
}

/// A session file moved aside by [`LockedSession::set_aside`] and still
/// locked: invisible under its name, kept until [`SetAside::discard`] or
/// [`SetAside::restore`].
///
/// Dropping it releases the lock and leaves the file aside, exactly what a
/// crash leaves; [`recover_set_aside`] puts it back at the next start.
#[derive(Debug)]
pub struct SetAside {
    /// Holds the `flock`: a concurrent [`recover_set_aside`] (another OS
    /// process starting on the same home) leaves a locked file alone.
    _file: File,
    dir: OwnedFd,
    name: OsString,
    aside: OsString,
}

impl SetAside {
    /// Deletes the set-aside file (the session was saved again or closed:
    /// the copy is superseded) and `fsync`s the directory.
    ///
    /// # Errors
    /// [`Error::Io`] with op `"unlink"` or `"fsync_dir"`.
    pub fn discard(self) -> Result<()> {
        match rustix::fs::unlinkat(&self.dir, &self.aside, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(e) => return Err(Error::io("unlink", e.into())),
        }
        rustix::fs::fsync(&self.dir).map_err(|e| Error::io("fsync_dir", e.into()))
    }

    /// Puts the file back under its name — unless a newer file took the name
    /// meanwhile, which then stays and supersedes it — and `fsync`s the
    /// directory. For a session that stopped without a successful save.
    ///
    /// # Errors
    /// [`Error::Io`] with op `"restore"`, `"unlink"` or `"fsync_dir"`.
    pub fn restore(self) -> Result<()> {
        put_back(&self.dir, &self.aside, &self.name)?;
        rustix::fs::fsync(&self.dir).map_err(|e| Error::io("fsync_dir", e.into()))
    }
}

/// Moves the file at `aside` back to `name` unless a newer file took the
/// name meanwhile, in which case the set-aside one is superseded and deleted
/// — what the newer save's own `rename` would have done to it.
fn put_back(dir: &OwnedFd, aside: &OsStr, name: &OsStr) -> Result<()> {
    // `linkat` fails with `EEXIST` instead of replacing: it is the
    // portable "rename without replacing" (`RENAME_NOREPLACE` is not
    // supported by every filesystem).
    match rustix::fs::linkat(dir, aside, dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(Error::io("restore", e.into())),
    }
    rustix::fs::unlinkat(dir, aside, AtFlags::empty()).map_err(|e| Error::io("unlink", e.into()))
}

/// (device, inode) of a `stat` result: what identifies a file.
// `st_dev`/`st_ino` are `u64` on 64-bit Linux but narrower or differently
// named types elsewhere; `u64::from` widens them all without a lossy `as`.
#[allow(clippy::useless_conversion)]
fn file_id(stat: &Stat) -> (u64, u64) {
    (u64::from(stat.st_dev), u64::from(stat.st_ino))
}

/// `.{name}.{16 lowercase hex}.removing`, random part from the OS generator,
/// so no other process can predict the name and plant or swap a file there.
fn aside_name(name: &OsStr) -> Result<OsString> {
    hidden_random_name(name, ASIDE_SUFFIX)
}

/// Puts back, or deletes, the session files a [`LockedSession::remove`]
/// interrupted by a crash left set aside as `.{name}.{hex}.removing` in
/// `dir`; returns how many it handled. Run at start-up.
///
/// A set-aside file is complete (it was renamed, never rewritten). If `name`
/// is free it is linked back under that name: either it is a session whose
/// resume never finished — its processes died with the crash, so the file is
/// the only copy — or a newer save that `remove` was putting back. If `name`
/// exists again (saved since), the set-aside copy is older and is deleted.
/// Losing nothing beats deleting a resumed session twice: at worst the
/// session shows up as resumable again.
///
/// A file a live `remove` is handling is skipped: its resumer holds the
/// session's `flock` until it is done, and the lock is tried here without
/// waiting. Symlinks and anything but regular files are never touched.
///
/// # Errors
/// [`Error::NotFound`] if `dir` does not exist; [`Error::Io`] for other
/// failures to read the directory, link or unlink.
pub fn recover_set_aside(dir: &Path) -> Result<usize> {
    let dir_fd = open_dir(dir)?;
    let entries =
        rustix::fs::Dir::read_from(&dir_fd).map_err(|e| Error::io("read_dir", e.into()))?;
    let mut handled = 0;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("read_dir", e.into()))?;
        let aside = OsStr::from_bytes(entry.file_name().to_bytes());
        let Some(target) = hidden_random_name_target(aside, ASIDE_SUFFIX) else {
            continue;
        };
        let target = OsStr::from_bytes(target);
        let stat = match rustix::fs::statat(&dir_fd, aside, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => stat,
            Err(Errno::NOENT) => continue,
            Err(e) => return Err(Error::io("stat", e.into())),
        };
        if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::RegularFile {
            continue;
        }
        // Held until the set-aside name is gone: a live resumer keeps it.
        let Some(_lock) = lock_abandoned(&dir_fd, aside, &stat)? else {
            continue;
        };
        match rustix::fs::linkat(&dir_fd, aside, &dir_fd, target, AtFlags::empty()) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(Error::io("link", e.into())),
        }
        match rustix::fs::unlinkat(&dir_fd, aside, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => handled += 1,
            Err(e) => return Err(Error::io("unlink", e.into())),
        }
    }
    if handled > 0 {
        rustix::fs::fsync(&dir_fd).map_err(|e| Error::io("fsync_dir", e.into()))?;
    }
    Ok(handled)
}

#[cfg(test)]
mod tests {
    //! The windows between open and lock, which the public API cannot hit on
    //! demand: here the file is opened, then changed, then locked.
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::fs;

    fn opened(path: &Path) -> (File, OwnedFd) {
        let (file, _) = bounded_read::open_regular(path).unwrap();
        (file, open_dir(path.parent().unwrap()).unwrap())
    }

    #[test]
    fn a_file_deleted_between_open_and_lock_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        fs::write(&path, b"{}").unwrap();
        let (file, dir_fd) = opened(&path);
        fs::remove_file(&path).unwrap();
        let result = lock_opened(&file, &dir_fd, OsStr::new("s.json"));
        assert!(matches!(result, Err(Error::NotFound)), "{result:?}");
    }

    #[test]
    fn a_file_replaced_between_open_and_lock_asks_for_a_retry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        fs::write(&path, b"{}").unwrap();
        let (file, dir_fd) = opened(&path);
        crate::atomic_write::write_atomic(&path, b"{\"new\":1}").unwrap();
        let result = lock_opened(&file, &dir_fd, OsStr::new("s.json"));
        assert!(matches!(result, Ok(None)), "{result:?}");
    }

    #[test]
    fn a_file_unchanged_between_open_and_lock_is_held_by_its_inode() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        fs::write(&path, b"{}").unwrap();
        let (file, dir_fd) = opened(&path);
        let meta = fs::metadata(&path).unwrap();
        let result = lock_opened(&file, &dir_fd, OsStr::new("s.json")).unwrap();
        assert_eq!(result, Some((meta.dev(), meta.ino())));
    }

    #[test]
    fn aside_names_are_private_and_never_look_like_a_save_temp_file() {
        let a = aside_name(OsStr::new("s.json")).unwrap();
        let b = aside_name(OsStr::new("s.json")).unwrap();
        assert_ne!(a, b);
        let text = a.to_str().unwrap();
        assert!(text.starts_with(".s.json.") && text.ends_with(".removing"));
        assert!(!crate::atomic_write::is_temp_file_name(
            &a,
            Some(OsStr::new("s.json"))
        ));
    }
}
