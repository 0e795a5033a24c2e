//! Crash-safe file replacement: temp file, `fsync`, `rename`, directory `fsync`.
//!
//! The promise is that a crash, `SIGKILL` or power loss at any instant leaves
//! the target holding either the complete old bytes or the complete new
//! bytes — never a prefix, never an empty file. Each step carries part of it:
//!
//! 1. **Write a uniquely named temp file in the same directory**, named
//!    `.{file_name}.{16 lowercase hex}.tmp`. Same directory, because `rename`
//!    is only atomic within one filesystem. The random part comes from the
//!    OS generator, so a name cannot be predicted and pre-planted; the leading
//!    dot and the `.tmp` suffix keep it out of `*.json` listings; the exact
//!    shape lets [`remove_stale_temp_files`] recognise a killed writer's
//!    leftovers without touching anything else.
//! 2. **Create it with `O_CREAT | O_EXCL | O_NOFOLLOW`, mode 0600, and hold
//!    an exclusive `flock` on it until the rename.** `O_EXCL` fails if the
//!    name exists — including as a symlink, which is therefore never
//!    followed — so we always write a fresh inode that nobody else holds
//!    open. The lock tells [`remove_stale_temp_files`], in this or another
//!    process, that the file is being written rather than left by a killed
//!    writer (the kernel drops the lock of a dead process).
//! 3. **`fsync` the file before the rename.** Without it, the rename can reach
//!    the disk before the data does, and a power cut leaves the *new name* on
//!    an empty or partial file (the classic ext4 zero-length-file bug).
//! 4. **`rename` over the target.** POSIX `rename` replaces the directory
//!    entry atomically: every observer, and the disk after recovery, sees the
//!    old inode or the new one. It replaces a symlink at the target name
//!    rather than following it, and fails on a directory (which is left
//!    intact). `link`+`unlink` would not do: it cannot replace an existing
//!    name atomically.
//! 5. **`fsync` the directory.** The rename is a change to the directory, and
//!    until the directory is flushed a power cut may forget it — the old file
//!    would come back after the caller was told "saved".
//!
//! All of it goes through one descriptor of the parent directory (`openat`,
//! `renameat`, `unlinkat`, `fsync`), so the directory cannot be swapped for
//! another between the steps. Any failure before the rename completes removes
//! the temp file and leaves the target untouched. Only `SIGKILL` or a power
//! cut can leave a temp file behind; [`remove_stale_temp_files`] removes it.

use crate::{Error, Result};
use rustix::fs::{AtFlags, FileType, FlockOperation, Mode, OFlags};
use std::ffi::{OsStr, OsString};
use std::fs::{DirBuilder, File};
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

/// Mode of every file written by [`write_atomic`].
pub const FILE_MODE: u32 = 0o600;

/// Mode of every directory created by [`create_private_dir`].
pub const DIR_MODE: u32 = 0o700;

/// Hex digits in a temp file's random part (8 random bytes).
const RANDOM_HEX_LEN: usize = 16;

/// Suffix of every temp file.
const TEMP_SUFFIX: &[u8] = b".tmp";

/// Fresh names tried when a temp name already exists. With 64 random bits a
/// collision is astronomically unlikely; a persistent `EEXIST` means
/// something else is wrong, and is reported rather than looped on.
const CREATE_ATTEMPTS: usize = 4;

/// Atomically and durably replaces `path` with `bytes`; the new file has mode
/// exactly 0600.
///
/// The parent directory must exist (see [`create_private_dir`]). If `path` is
/// a symlink, the link itself is replaced, never its target.
///
/// # Errors
/// - [`Error::DirectoryNotFound`] if the parent directory does not exist
///   (not [`Error::NotFound`]: nothing that was asked for is missing, the
///   place to put it is).
/// - [`Error::Io`] with op `"write"` and kind `InvalidInput` if `path` has no
///   file name (`/`, `dir/..`).
/// - [`Error::Io`] with op `"open_dir"`, `"create_temp"`, `"random"`,
///   `"fchmod"`, `"write"`, `"fsync"` or `"rename"` if that step fails. In all
///   of these the old file (if any) is untouched and no temp file is left
///   behind. A directory at `path` fails at `"rename"`.
/// - [`Error::Io`] with op `"fsync_dir"` if the final directory `fsync` fails.
///   The new content is then already in place and visible, but its survival
///   of a power cut is not guaranteed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path.file_name().ok_or_else(|| {
        Error::io(
            "write",
            io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"),
        )
    })?;
    // A missing directory is not a missing session: callers must be able
    // to say which (an export to a directory that does not exist).
    let dir = open_dir(parent_of(path)).map_err(|e| match e {
        Error::NotFound => Error::DirectoryNotFound,
        other => other,
    })?;
    write_atomic_in(&dir, name, bytes, FILE_MODE)
}

/// Steps 1–5 of [`write_atomic`] for the entry `name` of the already opened
/// directory `dir`, the new file getting exactly `mode`.
///
/// For callers that reached the directory through descriptors themselves
/// ([`crate::beneath`], which walks a pinned project directory with
/// `O_NOFOLLOW`): no path is resolved here, so nothing can be redirected.
///
/// # Errors
/// As [`write_atomic`] from `"create_temp"` on.
pub(crate) fn write_atomic_in(dir: &OwnedFd, name: &OsStr, bytes: &[u8], mode: u32) -> Result<()> {
    let mut temp = TempFile::create(dir, name, mode)?;
    temp.file
        .write_all(bytes)
        .map_err(|e| Error::io("write", e))?;
    temp.file.sync_all().map_err(|e| Error::io("fsync", e))?;
    rustix::fs::renameat(dir, &temp.name, dir, name).map_err(|e| Error::io("rename", e.into()))?;
    // The name is now the target's: removing it would delete the new file.
    temp.disarm();
    // The inode is the target now; a resumer's `flock` on it
    // (`session_lock`) must not find it taken by us. Closing would release
    // it too, but only after the directory `fsync`.
    let _ = rustix::fs::flock(&temp.file, FlockOperation::Unlock);
    rustix::fs::fsync(dir).map_err(|e| Error::io("fsync_dir", e.into()))?;
    Ok(())
}

/// The directory part of `path`, with a bare file name meaning `.`.
pub(crate) fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Opens a directory for `*at` calls and `fsync`.
///
/// The directory path itself is followed like any path: it is the store's
/// own home, created by [`create_private_dir`], not attacker input. Only the
/// entries inside it are treated as hostile.
pub(crate) fn open_dir(dir: &Path) -> Result<OwnedFd> {
    rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io("open_dir", e.into()))
}

/// A temp file that unlinks itself on drop unless disarmed: every early
/// return (`?`) or panic between creation and rename cleans up.
struct TempFile<'d> {
    dir: &'d OwnedFd,
    name: OsString,
    file: File,
    armed: bool,
}

impl<'d> TempFile<'d> {
    /// Creates `.{target}.{random}.tmp` in `dir`, mode exactly `mode`.
    fn create(dir: &'d OwnedFd, target: &OsStr, mode: u32) -> Result<Self> {
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mut attempt = 1;
        loop {
            let name = temp_name(target)?;
            // Created 0600 whatever `mode` is: nobody else can open it
            // before the `fchmod` below.
            match rustix::fs::openat(dir, &name, flags, Mode::from_raw_mode(FILE_MODE)) {
                Ok(fd) => {
                    let mut temp = TempFile {
                        dir,
                        name,
                        file: File::from(fd),
                        armed: true,
                    };
                    if !temp.claim()? {
                        // A sweep took the file between our create and our
                        // lock (it looked like a killed writer's): start
                        // over under a fresh name.
                        if attempt < CREATE_ATTEMPTS {
                            attempt += 1;
                            continue;
                        }
                        return Err(Error::io(
                            "create_temp",
                            io::Error::other("temp file removed by a concurrent sweep"),
                        ));
                    }
                    // The create mode is masked by the umask, which can only
                    // remove bits: the file is never more open than 0600. A
                    // strict umask (0277, say) could make it 0400 or less,
                    // though, and a store that cannot read back its own files
                    // is broken; `fchmod` on the descriptor (no path, no race)
                    // makes the mode exactly `mode`. If it fails, the guard
                    // removes the file.
                    rustix::fs::fchmod(&temp.file, Mode::from_raw_mode(mode))
                        .map_err(|e| Error::io("fchmod", e.into()))?;
                    return Ok(temp);
                }
                Err(rustix::io::Errno::EXIST) if attempt < CREATE_ATTEMPTS => attempt += 1,
                Err(e) => return Err(Error::io("create_temp", e.into())),
            }
        }
    }

    /// Takes the exclusive `flock` that marks the file as being written, and
    /// checks that our name still names it. `Ok(false)` when a concurrent
    /// [`remove_stale_temp_files`] got to it first: it holds the lock (and
    /// is about to unlink the name) or has already unlinked it.
    fn claim(&mut self) -> Result<bool> {
        match rustix::fs::flock(&self.file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            // The sweep unlinks the name; our guard's unlink is harmless.
            Err(rustix::io::Errno::WOULDBLOCK) => return Ok(false),
            Err(e) => return Err(Error::io("flock", e.into())),
        }
        let ours = rustix::fs::fstat(&self.file).map_err(|e| Error::io("fstat", e.into()))?;
        match rustix::fs::statat(self.dir, &self.name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(named) if same_inode(&named, &ours) => Ok(true),
            Ok(_) | Err(rustix::io::Errno::NOENT) => {
                // The name is gone (or, impossibly with 64 random bits, is
                // someone else's): nothing of ours to unlink.
                self.disarm();
                Ok(false)
            }
            Err(e) => Err(Error::io("stat", e.into())),
        }
    }

    /// Keeps the file: its name now belongs to the renamed target.
    fn disarm(&mut self) {
        self.armed = false;
    }
}

fn same_inode(a: &rustix::fs::Stat, b: &rustix::fs::Stat) -> bool {
    a.st_dev == b.st_dev && a.st_ino == b.st_ino
}

impl Drop for TempFile<'_> {
    fn drop(&mut self) {
        if self.armed {
            // Best effort: if this fails too, the name is still recognisable
            // by `remove_stale_temp_files`.
            let _ = rustix::fs::unlinkat(self.dir.as_fd(), &self.name, AtFlags::empty());
        }
    }
}

/// `.{target}.{16 lowercase hex}.tmp`, random part from the OS generator.
fn temp_name(target: &OsStr) -> Result<OsString> {
    hidden_random_name(target, TEMP_SUFFIX)
}

/// `.{target}.{16 lowercase hex}{suffix}`: a hidden sibling name no other
/// process can predict (so none can plant or swap a file there first).
/// Shared with [`crate::session_lock`], whose set-aside names use another
/// suffix so that a temp-file sweep never mistakes one for a temp file.
pub(crate) fn hidden_random_name(target: &OsStr, suffix: &[u8]) -> Result<OsString> {
    let mut random = [0u8; RANDOM_HEX_LEN / 2];
    getrandom::fill(&mut random).map_err(|e| {
        let source = e.raw_os_error().map_or_else(
            || io::Error::other(e.to_string()),
            io::Error::from_raw_os_error,
        );
        Error::io("random", source)
    })?;
    let target = target.as_bytes();
    let mut name = Vec::with_capacity(1 + target.len() + 1 + RANDOM_HEX_LEN + suffix.len());
    name.push(b'.');
    name.extend_from_slice(target);
    name.push(b'.');
    for byte in random {
        name.push(HEX[usize::from(byte >> 4)]);
        name.push(HEX[usize::from(byte & 0x0f)]);
    }
    name.extend_from_slice(suffix);
    Ok(OsString::from_vec(name))
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Whether `name` has exactly the shape [`write_atomic`] gives its temp
/// files, for `target` if given, or for any non-empty target name.
///
/// `.{target}.{16 lowercase hex}.tmp`; anything else — uppercase hex, a
/// different length, no leading dot, an empty target — is not ours.
pub fn is_temp_file_name(name: &OsStr, target: Option<&OsStr>) -> bool {
    match hidden_random_name_target(name, TEMP_SUFFIX) {
        Some(stem) => target.is_none_or(|t| stem == t.as_bytes()),
        None => false,
    }
}

/// The `{target}` of a name shaped as [`hidden_random_name`] makes it with
/// `suffix` (`.{target}.{16 lowercase hex}{suffix}`, target non-empty), or
/// `None` for any other name.
pub(crate) fn hidden_random_name_target<'n>(name: &'n OsStr, suffix: &[u8]) -> Option<&'n [u8]> {
    let rest = name.as_bytes().strip_prefix(b".")?.strip_suffix(suffix)?;
    let split = rest.len().checked_sub(RANDOM_HEX_LEN + 1)?;
    let (stem, tail) = rest.split_at(split);
    let hex = tail.strip_prefix(b".")?;
    (hex.iter().all(|b| HEX.contains(b)) && !stem.is_empty()).then_some(stem)
}

/// Deletes the temp files a killed [`write_atomic`] left in `dir`; returns how
/// many were removed.
///
/// With `target: Some(name)`, only temp files for that file name are
/// considered (after a successful save of that file); with `None`, every
/// temp file (at start-up).
///
/// A temp file whose writer is alive — in this process or another one
/// sharing the directory — is never removed: [`write_atomic`] holds an
/// exclusive `flock` on it from creation to rename, and a file whose lock
/// cannot be taken at once is skipped. Removing it would make that writer's
/// rename fail; a store starting up while another process saves, or two
/// concurrent writers of one file, would otherwise fail each other's saves.
/// A killed writer's lock died with it.
///
/// Only regular files whose name passes [`is_temp_file_name`] are removed.
/// Symlinks, directories and everything else are left alone, even with a
/// matching name, and no link is ever followed (`unlinkat` removes a name,
/// never what it points to; the file is opened with `O_NOFOLLOW |
/// O_NONBLOCK` to be locked). A name that vanishes during the scan, and a
/// file that cannot be opened for reading, are skipped.
///
/// # Errors
/// [`Error::NotFound`] if `dir` does not exist; [`Error::Io`] with op
/// `"open_dir"`, `"read_dir"`, `"stat"`, `"open"`, `"fstat"`, `"flock"` or
/// `"unlink"`.
pub fn remove_stale_temp_files(dir: &Path, target: Option<&OsStr>) -> Result<usize> {
    let dir_fd = open_dir(dir)?;
    let entries =
        rustix::fs::Dir::read_from(&dir_fd).map_err(|e| Error::io("read_dir", e.into()))?;
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("read_dir", e.into()))?;
        let name = OsStr::from_bytes(entry.file_name().to_bytes());
        if !is_temp_file_name(name, target) {
            continue;
        }
        // `d_type` may be unknown on some filesystems; `statat` without
        // following links is the authority.
        let stat = match rustix::fs::statat(&dir_fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => stat,
            Err(rustix::io::Errno::NOENT) => continue,
            Err(e) => return Err(Error::io("stat", e.into())),
        };
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            continue;
        }
        // Held until after the unlink: the writer's `claim` then fails.
        let Some(_lock) = lock_abandoned(&dir_fd, name, &stat)? else {
            continue;
        };
        // If the name was swapped for a symlink or directory since the
        // check, `unlinkat` removes the symlink itself (not its target) or
        // fails with `EISDIR`; either way nothing outside `dir` is touched.
        match rustix::fs::unlinkat(&dir_fd, name, AtFlags::empty()) {
            Ok(()) => removed += 1,
            Err(rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(Error::io("unlink", e.into())),
        }
    }
    Ok(removed)
}

/// Opens the temp file `name` (the inode `stat` describes) and takes its
/// `flock` without waiting. `None` when it is in flight (a live writer holds
/// the lock), gone, replaced, or cannot be opened for reading; otherwise the
/// locked descriptor, and `name` still names it.
pub(crate) fn lock_abandoned(
    dir: &OwnedFd,
    name: &OsStr,
    stat: &rustix::fs::Stat,
) -> Result<Option<OwnedFd>> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let fd = match rustix::fs::openat(dir, name, flags, Mode::empty()) {
        Ok(fd) => fd,
        // Gone, swapped for a symlink, or not ours to read.
        Err(
            rustix::io::Errno::NOENT
            | rustix::io::Errno::LOOP
            | rustix::io::Errno::ACCESS
            | rustix::io::Errno::PERM,
        ) => return Ok(None),
        Err(e) => return Err(Error::io("open", e.into())),
    };
    let opened = rustix::fs::fstat(&fd).map_err(|e| Error::io("fstat", e.into()))?;
    if !same_inode(&opened, stat) {
        return Ok(None);
    }
    match rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(rustix::io::Errno::WOULDBLOCK) => return Ok(None),
        Err(e) => return Err(Error::io("flock", e.into())),
    }
    // A writer that finished in between renamed the name away.
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(named) if same_inode(&named, &opened) => Ok(Some(fd)),
        Ok(_) | Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(Error::io("stat", e.into())),
    }
}

/// Creates `path` and any missing parents with mode 0700; an existing
/// directory is accepted as is.
///
/// Existing directories (or symlinks to one) are not `chmod`ed: their mode
/// is the user's choice, and `chmod` by path would be a check-then-act race
/// anyway. New ones get 0700 masked by the umask, which can only remove bits,
/// so they are never more open than 0700.
///
/// # Errors
/// - [`Error::Io`] with op `"create_dir"` and kind
///   [`AlreadyExists`](io::ErrorKind::AlreadyExists) if `path` exists but is
///   not a directory.
/// - [`Error::Io`] with op `"create_dir"` for any other failure: kind
///   [`NotADirectory`](io::ErrorKind::NotADirectory) when a parent is a file,
///   `PermissionDenied`, ...
pub fn create_private_dir(path: &Path) -> Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(path)
        .map_err(|e| Error::io("create_dir", e))
}
