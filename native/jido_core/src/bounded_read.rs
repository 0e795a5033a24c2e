//! Size-gated reads that never follow a link, never block, never over-read.
//!
//! A session file is attacker-adjacent input: anything that can write into the
//! sessions directory can put a symlink, a FIFO, a device or a multi-gigabyte
//! file where a small JSON document is expected. Every step below closes one
//! of those doors:
//!
//! 1. **Open with `O_NOFOLLOW`.** A symlink as the final component makes
//!    `open` fail with `ELOOP` ([`Error::Symlink`]) instead of reading whatever
//!    the link points at (`/dev/zero`, another user's file, ...). Directory
//!    components are still resolved normally; they belong to the store's own
//!    home, which is checked elsewhere.
//! 2. **Open with `O_NONBLOCK`.** Opening a FIFO read-only blocks until a
//!    writer appears, which could be never; it would pin a dirty scheduler
//!    forever. With `O_NONBLOCK` the open returns at once and step 3 refuses
//!    it. The flag is left set afterwards: it has no effect on regular files
//!    (their reads never return `EAGAIN`), and only regular files are read.
//!    `O_NOCTTY` keeps a terminal device from becoming our controlling tty
//!    during the instant before it is refused; `O_CLOEXEC` keeps the
//!    descriptor out of any child process.
//! 3. **`fstat` the descriptor, never the path.** Checking a path and then
//!    opening it is a race: the name can be swapped between the two calls.
//!    The descriptor is the object we will read, so its type and size are
//!    the facts that matter. Anything but a regular file (FIFO, socket, char
//!    or block device, directory) is [`Error::NotRegularFile`].
//! 4. **Refuse a size over the limit before reading anything**
//!    ([`Error::FileTooLarge`] with the reported size, for the log).
//! 5. **Read at most `limit + 1` bytes.** The size from `fstat` is only a
//!    hint: the file can grow between the check and the read, and some
//!    regular files (procfs, sysfs) report size 0. Reading one byte past the
//!    limit is how an over-limit file is detected without trusting the size
//!    and without ever holding more than `limit + 1` bytes in memory.
//!
//! ```no_run
//! use jido_core::bounded_read::read_regular;
//! let bytes = read_regular("/home/me/.jido_code/sessions/abc.json".as_ref(), 10 << 20)?;
//! # Ok::<(), jido_core::Error>(())
//! ```
//!
//! Opening a device node read-only (before `fstat` can refuse it) is harmless
//! for everything a user can create in their own directory; devices that act
//! on open need a privileged `mknod` to exist there in the first place.

use crate::{Error, Result};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use std::fs::{File, Metadata};
use std::io::Read;
use std::path::Path;

/// Opens `path` for reading and returns it with its `fstat` metadata, but only
/// if it is a regular file that is not a symlink.
///
/// This is the open-and-check half of [`read_regular`], for callers that want
/// to read only a prefix ([`read_prefix`]) or to apply the size gate later
/// ([`read_open`]). The size is *not* checked here.
///
/// # Errors
/// - [`Error::NotFound`] if `path` does not exist.
/// - [`Error::Symlink`] if the final component is a symbolic link.
/// - [`Error::NotRegularFile`] for a FIFO, socket, device or directory.
/// - [`Error::Io`] with op `"open"` for any other open failure (`ENOTDIR`,
///   `EACCES`, ...), or op `"fstat"` if `fstat` fails.
pub fn open_regular(path: &Path) -> Result<(File, Metadata)> {
    let flags =
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let fd = rustix::fs::open(path, flags, Mode::empty()).map_err(open_error)?;
    let file = File::from(fd);
    // `File::metadata` is `fstat`/`statx` on the descriptor: the object we
    // will read, not whatever the name points at by now.
    let meta = file.metadata().map_err(|e| Error::io("fstat", e))?;
    if !meta.file_type().is_file() {
        return Err(Error::NotRegularFile);
    }
    Ok((file, meta))
}

/// Classifies an `open(2)` failure.
fn open_error(errno: Errno) -> Error {
    match errno {
        // `O_NOFOLLOW` and a symlink as the final component. (Also a loop of
        // links among the directory components, which is no better.)
        Errno::LOOP => Error::Symlink,
        // `open` on a Unix socket fails with `ENXIO`, and so does a device
        // node with no device behind it; `ENODEV` is a node with no driver.
        // A regular file never produces either, so refuse them by type.
        Errno::NXIO | Errno::NODEV => Error::NotRegularFile,
        // Everything else (`ENOENT` becomes `NotFound` in `Error::io`).
        // `EWOULDBLOCK` is possible on a regular file that holds a lease
        // (`O_NONBLOCK` refuses to wait for the lease break): reported as I/O.
        other => Error::io("open", other.into()),
    }
}

/// Reads the whole of `path` if it is a regular file of at most `limit` bytes.
///
/// See the [module documentation](self) for why each step is there.
///
/// # Errors
/// Everything [`open_regular`] returns, plus:
/// - [`Error::FileTooLarge`] if `fstat` reports more than `limit` bytes
///   (`size` is that report) or more than `limit` bytes arrive while reading
///   because the file grew (`size` is the bytes read, `limit + 1`).
/// - [`Error::Io`] with op `"read"` if reading fails.
pub fn read_regular(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let (mut file, meta) = open_regular(path)?;
    read_open(&mut file, &meta, limit)
}

/// The size gate and bounded read of [`read_regular`], on a file opened by
/// [`open_regular`] whose metadata is `meta`.
///
/// Separate so the gap between `fstat` and `read` can be exercised: a file
/// that grows after `meta` was taken is still refused.
///
/// # Errors
/// - [`Error::FileTooLarge`] if `meta` reports more than `limit` bytes, or if
///   more than `limit` bytes can be read (`size` is then `limit + 1`, what
///   was actually read before stopping).
/// - [`Error::Io`] with op `"read"` if reading fails.
pub fn read_open(file: &mut File, meta: &Metadata, limit: u64) -> Result<Vec<u8>> {
    let size = meta.len();
    if size > limit {
        return Err(Error::FileTooLarge { size, limit });
    }
    // `size` is trusted only as a capacity hint, and never beyond `limit`.
    // The `+ 1` leaves room for the byte that proves the file grew, so a
    // file of exactly the reported size is read without reallocating.
    let hint = usize::try_from(size)
        .unwrap_or(usize::MAX)
        .saturating_add(1);
    let mut buf = Vec::with_capacity(hint);
    // No `EAGAIN` despite `O_NONBLOCK`: regular files ignore the flag.
    // `read_to_end` retries `EINTR` itself.
    file.take(limit.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(|e| Error::io("read", e))?;
    let read = buf.len() as u64;
    if read > limit {
        return Err(Error::FileTooLarge { size: read, limit });
    }
    Ok(buf)
}

/// Largest up-front allocation of [`read_prefix`]; the buffer grows past it
/// only as bytes actually arrive.
const PREFIX_CAPACITY_HINT: usize = 64 * 1024;

/// Reads up to `max` bytes from the current position of `file`: fewer only
/// at end of file.
///
/// For callers that need only the head of a file opened by [`open_regular`]
/// (a version sniff, a listing preview) and must not read the rest.
///
/// # Errors
/// [`Error::Io`] with op `"read"` if reading fails.
pub fn read_prefix(file: &mut File, max: usize) -> Result<Vec<u8>> {
    // `max` is a bound, not a promise that the file is that long: do not
    // reserve a caller's generous bound up front.
    let mut buf = Vec::with_capacity(max.min(PREFIX_CAPACITY_HINT));
    file.take(max as u64)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io("read", e))?;
    Ok(buf)
}
