//! The assistant's file operations, resolved beneath a pinned project
//! directory.
//!
//! A running session holds its project directory open as a
//! [`path_guard::PinnedDir`](crate::path_guard::PinnedDir). Every file operation the
//! assistant performs — [`read`], [`write()`], [`list`], [`stat`] — takes a path
//! *relative to that descriptor* and resolves it here, one component at a
//! time, never by a path string:
//!
//! | rule | attack it stops |
//! |---|---|
//! | relative only | an absolute path ignores the project altogether |
//! | no NUL | C APIs truncate at NUL: the checked and the opened name would differ |
//! | no `..` component | climbing out of the project (`../../.ssh/authorized_keys`) |
//! | every component opened with `O_NOFOLLOW` from its parent's descriptor | a symlink planted in the project, or the project directory itself swapped for a link after resume: nothing is ever followed, so nothing can redirect the walk |
//! | no component is the JidoCode home | a project that contains the home (`$HOME` as project, `~/.jido_code` inside): the agent could read the machine secret or rewrite a session |
//!
//! Because the walk starts from the pinned descriptor, renaming or replacing
//! the project directory after resume changes nothing: the operations keep
//! reaching the directory that was validated, wherever it now sits, and never
//! the one now found at its path.
//!
//! # Why not `openat2`
//!
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` (Linux ≥ 5.6) resolves the
//! whole path in one call with the same guarantees for `..` and links. It
//! cannot refuse the JidoCode home, though: that needs the identity of every
//! directory passed through, which the per-component walk has anyway (one
//! `openat` and one `fstat` per component, microseconds at a project's usual
//! depth). One walk on every kernel beats two code paths that must agree.
//!
//! # Limits
//!
//! - A hard link to a file outside the project, made by someone who can
//!   write the project, is a regular file here and is followed like any
//!   other (hard links cannot span filesystems, and `fs.protected_hardlinks`
//!   stops other users linking our files).
//! - New directories created by [`write()`] get mode 0755 (less the umask);
//!   new files 0644. An existing file keeps its permission bits.
//!
//! ```
//! use jido_core::{beneath, path_guard::{self, PathPolicy}};
//!
//! let dir = tempfile::tempdir()?;
//! let project = path_guard::canonicalize(dir.path())?;
//! let pin = path_guard::pin(&project, &PathPolicy::default())?;
//! beneath::write(&pin, "src/notes.txt".as_ref(), b"hello")?;
//! assert_eq!(beneath::read(&pin, "src/notes.txt".as_ref(), 1024)?, b"hello");
//! assert!(beneath::read(&pin, "../etc/passwd".as_ref(), 1024).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::atomic_write::write_atomic_in;
use crate::bounded_read;
use crate::path_guard::PinnedDir;
use crate::{BeneathViolation, Error, Result};
use rustix::fs::{fstat, mkdirat, openat, statat, AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Mode of a file [`write()`] creates (an existing file keeps its own).
pub const NEW_FILE_MODE: u32 = 0o644;

/// Mode of a directory [`write()`] creates, less the umask.
pub const NEW_DIR_MODE: u32 = 0o755;

/// What kind of file a directory entry or [`stat`] result is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Directory,
    /// A symbolic link (listed, never followed).
    Symlink,
    /// A FIFO, socket or device.
    Other,
}

impl Kind {
    fn of(st: &Stat) -> Self {
        match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => Self::File,
            FileType::Directory => Self::Directory,
            FileType::Symlink => Self::Symlink,
            _ => Self::Other,
        }
    }
}

/// One entry of [`list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The entry's name in the directory.
    pub name: OsString,
    /// What it is (from `lstat`: a symlink is [`Kind::Symlink`]).
    pub kind: Kind,
}

/// What [`stat`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Info {
    /// What it is.
    pub kind: Kind,
    /// Size in bytes.
    pub size: u64,
    /// Permission bits (`0o7777` of `st_mode`).
    pub mode: u32,
    /// Modification time, seconds since the Unix epoch.
    pub mtime: i64,
}

/// Reads the regular file at `rel` beneath `pin`, at most `limit` bytes.
///
/// # Errors
/// - The [`BeneathViolation`]s of the walk (see the [module docs](self)).
/// - [`Error::NotFound`] if a component is missing; [`Error::NotRegularFile`]
///   for a directory, FIFO, socket or device; [`Error::FileTooLarge`] over
///   `limit`; [`Error::Io`] for other failures.
pub fn read(pin: &PinnedDir, rel: &Path, limit: u64) -> Result<Vec<u8>> {
    let walk = Walk::new(pin)?;
    let (parent, name) = walk.parent(rel, Create::No)?;
    let name = name.ok_or(Error::NotRegularFile)?;
    let flags =
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let fd = openat(&parent, name, flags, Mode::empty()).map_err(final_open_error)?;
    let mut file = File::from(fd);
    let meta = file.metadata().map_err(|e| Error::io("fstat", e))?;
    if !meta.file_type().is_file() {
        return Err(Error::NotRegularFile);
    }
    bounded_read::read_open(&mut file, &meta, limit)
}

/// Atomically and durably replaces (or creates) the file at `rel` beneath
/// `pin` with `bytes`: temp file, `fsync`, `rename`, directory `fsync`, all
/// through the parent's descriptor ([`crate::atomic_write`]). Missing parent
/// directories are created, each beneath the one before.
///
/// # Errors
/// - The [`BeneathViolation`]s of the walk; [`BeneathViolation::Symlink`] if
///   `rel` itself names a symlink (it is not replaced either).
/// - [`Error::NotRegularFile`] if `rel` names a directory or special file, or
///   is the project directory itself.
/// - [`Error::Io`] if a step fails; the old file is then untouched.
pub fn write(pin: &PinnedDir, rel: &Path, bytes: &[u8]) -> Result<()> {
    let walk = Walk::new(pin)?;
    let (parent, name) = walk.parent(rel, Create::Yes)?;
    let name = name.ok_or(Error::NotRegularFile)?;
    let mode = match statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => match Kind::of(&st) {
            Kind::File => permission_bits(&st),
            Kind::Symlink => return Err(BeneathViolation::Symlink.into()),
            Kind::Directory | Kind::Other => return Err(Error::NotRegularFile),
        },
        Err(Errno::NOENT) => NEW_FILE_MODE,
        Err(e) => return Err(Error::io("stat", e.into())),
    };
    write_atomic_in(&parent, name, bytes, mode)
}

/// The entries of the directory at `rel` beneath `pin` (`""` or `"."`: the
/// project directory), sorted by name, without `.` and `..`.
///
/// # Errors
/// The [`BeneathViolation`]s of the walk (the directory itself included);
/// [`Error::NotFound`]; [`BeneathViolation::NotDirectory`] if `rel` is not a
/// directory; [`Error::Io`] for other failures.
pub fn list(pin: &PinnedDir, rel: &Path) -> Result<Vec<Entry>> {
    let walk = Walk::new(pin)?;
    let dir = walk.directory(rel)?;
    let entries = rustix::fs::Dir::read_from(&dir).map_err(|e| Error::io("read_dir", e.into()))?;
    let mut listed = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("read_dir", e.into()))?;
        let name = OsStr::from_bytes(entry.file_name().to_bytes());
        if name == "." || name == ".." {
            continue;
        }
        // `d_type` may be unknown on some filesystems; `lstat` always knows.
        let kind = match statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Kind::of(&st),
            // Removed since the directory was read.
            Err(Errno::NOENT) => continue,
            Err(e) => return Err(Error::io("stat", e.into())),
        };
        listed.push(Entry {
            name: name.to_owned(),
            kind,
        });
    }
    listed.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(listed)
}

/// Kind, size, permission bits and modification time of `rel` beneath `pin`
/// (`""` or `"."`: the project directory), without following a final symlink.
///
/// # Errors
/// The [`BeneathViolation`]s of the walk ([`BeneathViolation::Symlink`] for a
/// final symlink too, [`BeneathViolation::InJidoHome`] for the home itself);
/// [`Error::NotFound`]; [`Error::Io`] for other failures.
pub fn stat(pin: &PinnedDir, rel: &Path) -> Result<Info> {
    let walk = Walk::new(pin)?;
    let (parent, name) = walk.parent(rel, Create::No)?;
    let st = match name {
        None => fstat(&parent).map_err(|e| Error::io("fstat", e.into()))?,
        Some(name) => statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| Error::io("stat", e.into()))?,
    };
    let kind = Kind::of(&st);
    if kind == Kind::Symlink {
        return Err(BeneathViolation::Symlink.into());
    }
    if kind == Kind::Directory {
        walk.check_not_denied(&st)?;
    }
    Ok(Info {
        kind,
        size: u64::try_from(st.st_size).unwrap_or(0),
        mode: permission_bits(&st),
        mtime: st.st_mtime as i64,
    })
}

/// `st_mode & 0o7777`. `st_mode` is `u32` on Linux but `u16` on macOS: the
/// widening is a no-op on some targets.
#[allow(clippy::unnecessary_cast)]
fn permission_bits(st: &Stat) -> u32 {
    st.st_mode as u32 & 0o7777
}

/// Whether [`Walk::parent`] creates missing directories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Create {
    Yes,
    No,
}

/// One resolution beneath a pin: its descriptor and the identities of the
/// directories it must never enter.
struct Walk<'p> {
    root: BorrowedFd<'p>,
    denied: Vec<(u64, u64)>,
}

impl<'p> Walk<'p> {
    fn new(pin: &'p PinnedDir) -> Result<Self> {
        // The home is looked up on every operation: it may be created after
        // the session started (the first save creates it).
        let denied = pin
            .denied_roots()
            .iter()
            .filter_map(|root| std::fs::metadata(root).ok())
            .map(|meta| {
                use std::os::unix::fs::MetadataExt;
                (meta.dev(), meta.ino())
            })
            .collect();
        Ok(Self {
            root: pin.as_fd(),
            denied,
        })
    }

    /// Opens every directory of `rel` but the last component and returns
    /// the last directory with the final name (`None` when `rel` names the
    /// pinned directory itself: `""`, `"."`).
    fn parent<'r>(&self, rel: &'r Path, create: Create) -> Result<(OwnedFd, Option<&'r OsStr>)> {
        let components = components(rel)?;
        let (last, dirs) = match components.split_last() {
            Some((last, dirs)) => (Some(*last), dirs),
            None => (None, &components[..]),
        };
        let mut fd = self.open_dir(self.root, OsStr::new("."), Create::No)?;
        for name in dirs {
            fd = self.open_dir(fd.as_fd(), name, create)?;
        }
        Ok((fd, last))
    }

    /// The directory `rel` names, opened for reading its entries.
    fn directory(&self, rel: &Path) -> Result<OwnedFd> {
        match self.parent(rel, Create::No)? {
            (dir, None) => Ok(dir),
            (parent, Some(name)) => self.open_dir(parent.as_fd(), name, Create::No),
        }
    }

    /// `openat(parent, name, O_DIRECTORY | O_NOFOLLOW)`, creating it first
    /// when asked, then refuses it if it is the JidoCode home.
    fn open_dir(&self, parent: BorrowedFd<'_>, name: &OsStr, create: Create) -> Result<OwnedFd> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = match openat(parent, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) if create == Create::Yes => {
                match mkdirat(parent, name, Mode::from_raw_mode(NEW_DIR_MODE)) {
                    // Created meanwhile by someone else: open whatever it is,
                    // with the same refusals.
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(Error::io("mkdir", e.into())),
                }
                openat(parent, name, flags, Mode::empty())
                    .map_err(|e| component_error(parent, name, e))?
            }
            Err(e) => return Err(component_error(parent, name, e)),
        };
        let st = fstat(&fd).map_err(|e| Error::io("fstat", e.into()))?;
        self.check_not_denied(&st)?;
        Ok(fd)
    }

    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    fn check_not_denied(&self, st: &Stat) -> Result<()> {
        let id = (u64::from(st.st_dev), u64::from(st.st_ino));
        if self.denied.contains(&id) {
            return Err(in_jido_home());
        }
        Ok(())
    }
}

#[cold]
fn in_jido_home() -> Error {
    BeneathViolation::InJidoHome.into()
}

/// The components of a relative path, `.` and empty ones dropped; refuses
/// absolute paths, NUL and `..`.
fn components(rel: &Path) -> Result<Vec<&OsStr>> {
    let bytes = rel.as_os_str().as_bytes();
    if bytes.first() == Some(&b'/') {
        return Err(BeneathViolation::NotRelative.into());
    }
    if bytes.contains(&0) {
        return Err(BeneathViolation::ContainsNul.into());
    }
    let mut components = Vec::new();
    for part in bytes.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return Err(BeneathViolation::Traversal.into()),
            name => components.push(OsStr::from_bytes(name)),
        }
    }
    Ok(components)
}

/// Names the refusal of a directory component. With `O_NOFOLLOW |
/// O_DIRECTORY` Linux reports a symlink as `ELOOP` or `ENOTDIR`; the `statat`
/// only picks the error, the open already refused.
#[cold]
fn component_error(parent: BorrowedFd<'_>, name: &OsStr, e: Errno) -> Error {
    match e {
        Errno::NOENT => Error::NotFound,
        Errno::NOTDIR | Errno::LOOP => match statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if Kind::of(&st) == Kind::Symlink => BeneathViolation::Symlink.into(),
            _ => BeneathViolation::NotDirectory.into(),
        },
        other => Error::io("openat", other.into()),
    }
}

/// Names the refusal of the final component of a read.
#[cold]
fn final_open_error(e: Errno) -> Error {
    match e {
        // `O_NOFOLLOW` on a final symlink.
        Errno::LOOP => BeneathViolation::Symlink.into(),
        // A socket, or a device node without a device: not a regular file.
        Errno::NXIO | Errno::NODEV => Error::NotRegularFile,
        other => Error::io("open", other.into()),
    }
}
