//! The per-installation 32-byte machine secret.
//!
//! Every signing key is derived (see [`crate::signing`]) from one random
//! 32-byte secret kept in `~/.jido_code/machine_secret`. This module creates
//! that file once and checks it on every load.
//!
//! # Creation: publish with `link()`, never expose a partial file
//!
//! Two BEAM nodes (or a node and the CLI) may start at the same instant on a
//! fresh home. If each wrote its own secret, one of them would sign sessions
//! with a key the other can never verify. A plain `O_CREAT|O_EXCL` on the final
//! name makes the race winner unique, but the loser could open the file before
//! the winner has written its 32 bytes and see a short (or empty) secret.
//!
//! So the bytes are written to a uniquely named temporary file in the same
//! directory (`O_CREAT|O_EXCL|O_NOFOLLOW`, mode 0600), `fsync`ed, and only then
//! published with `link(temp, path)`. `link` is atomic and — unlike `rename` —
//! refuses to replace an existing name (`EEXIST`): exactly one process wins,
//! every loser discards its temporary file and reads the winner's complete
//! file. The temporary name is always removed and the directory `fsync`ed, so
//! the published name survives a crash.
//!
//! # Loading: check the open descriptor, not the path
//!
//! The file is opened with `O_NOFOLLOW` (a symbolic link planted in the home
//! could point the key at attacker-chosen bytes) and `O_NONBLOCK` (opening a
//! FIFO planted there must not hang the caller). Everything else is checked on
//! the open descriptor with `fstat`, so there is no window between check and
//! use: it must be a regular file owned by the effective user, exactly 32 bytes
//! long, and not readable or writable by group/other. A file with loose
//! permissions may already have leaked, so the caller decides through
//! [`InsecureMode`] whether to refuse it or `fchmod` it back to 0600 (and warn
//! the user, which [`Origin::Repaired`] tells it to do).
//!
//! ```
//! use jido_core::machine_secret::{load_or_create, InsecureMode, Origin};
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("machine_secret");
//! let (created, origin) = load_or_create(&path, InsecureMode::Refuse)?;
//! assert_eq!(origin, Origin::Created);
//! let (loaded, origin) = load_or_create(&path, InsecureMode::Refuse)?;
//! assert_eq!(origin, Origin::Existing);
//! assert_eq!(created.expose(), loaded.expose());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::{Error, Result};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use std::fs::{File, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Length of the secret in bytes (the output size of SHA-256, HKDF's hash).
pub const SECRET_LEN: usize = 32;

/// Permission bits that must be clear: any access by group or other.
const GROUP_OTHER_BITS: u32 = 0o077;

/// How many times to retry when the published file vanishes between our
/// failed `link` and our `open` (someone deleted it). Bounded so a hostile
/// loop of deletions cannot keep us spinning.
const MAX_ATTEMPTS: usize = 4;

/// What to do with a secret file readable or writable by group/other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsecureMode {
    /// Refuse with [`crate::Error::InsecureSecret`].
    Refuse,
    /// `fchmod` it to 0600 and report that it was repaired.
    Repair,
}

/// The secret bytes; zeroed on drop, never printed.
pub struct MachineSecret(Zeroizing<[u8; SECRET_LEN]>);

impl MachineSecret {
    /// Wraps raw bytes (tests and tools).
    pub fn from_bytes(bytes: [u8; SECRET_LEN]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The raw bytes. Only key derivation should need them.
    pub fn expose(&self) -> &[u8; SECRET_LEN] {
        &self.0
    }
}

impl std::fmt::Debug for MachineSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MachineSecret(<redacted>)")
    }
}

/// How [`load_or_create`] obtained the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Read from an existing file.
    Existing,
    /// Created by this call.
    Created,
    /// Existing, and its permissions were repaired to 0600.
    Repaired,
}

/// What [`check_home`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HomeCheck {
    /// Owned by us, not writable by group or other.
    Secure,
    /// Does not exist yet; it will be created with mode 0700.
    Missing,
    /// Was writable by group or other (`mode` before); repaired with
    /// `fchmod` (group and other write bits cleared).
    Repaired {
        /// The permission bits found.
        mode: u32,
    },
}

/// Checks the JidoCode home (the directory holding the secret, the
/// enforcement marker and the sessions): it must be a directory owned by the
/// effective user and not writable by group or other.
///
/// Whoever can write the home can delete or replace the secret and the
/// marker, and rename the sessions directory; a home owned by someone else
/// was planted. A writable home is repaired (`fchmod` on the descriptor that
/// was checked) or refused, as `insecure` says; a foreign one is always
/// refused. The path is followed like any configured path (the home may sit
/// behind a symlink of the user's own making); its target is what is
/// checked.
///
/// # Errors
/// - [`Error::InsecureHome`] — not a directory, not owned by us, or writable
///   by group/other with [`InsecureMode::Refuse`].
/// - [`Error::Io`] — the open, `fstat` or `fchmod` failed.
pub fn check_home(dir: &Path, insecure: InsecureMode) -> Result<HomeCheck> {
    let insecure_home = |reason, mode| Error::InsecureHome {
        path: dir.to_path_buf(),
        reason,
        mode,
    };
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let fd = match rustix::fs::open(dir, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(HomeCheck::Missing),
        Err(Errno::NOTDIR) => return Err(insecure_home("is not a directory", 0)),
        Err(e) => return Err(Error::io("open", e.into())),
    };
    let st = rustix::fs::fstat(&fd).map_err(|e| Error::io("fstat", e.into()))?;
    #[allow(clippy::unnecessary_cast)]
    let mode = st.st_mode as u32 & 0o7777;
    if st.st_uid != rustix::process::geteuid().as_raw() {
        return Err(insecure_home("is not owned by the current user", mode));
    }
    const GROUP_OTHER_WRITE: u32 = 0o022;
    if mode & GROUP_OTHER_WRITE == 0 {
        return Ok(HomeCheck::Secure);
    }
    match insecure {
        InsecureMode::Refuse => Err(insecure_home("is writable by group or other", mode)),
        InsecureMode::Repair => {
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode & !GROUP_OTHER_WRITE))
                .map_err(|e| Error::io("fchmod", e.into()))?;
            Ok(HomeCheck::Repaired { mode })
        }
    }
}

/// Loads the secret at `path`, creating it race-free if missing.
///
/// A missing parent directory is created with mode 0700. When several
/// processes or threads call this at once on a missing file, all of them end
/// up with the same secret (see the module docs).
///
/// # Errors
/// * [`Error::InvalidSecret`] — the path is a symbolic link, not a regular
///   file, not owned by the effective user, or not exactly 32 bytes.
/// * [`Error::InsecureSecret`] — group/other permission bits are set and
///   `insecure` is [`InsecureMode::Refuse`].
/// * [`Error::Io`] / [`Error::NotFound`] — an operating-system call failed
///   (the operation is named), or randomness was unavailable.
pub fn load_or_create(path: &Path, insecure: InsecureMode) -> Result<(MachineSecret, Origin)> {
    for _ in 0..MAX_ATTEMPTS {
        match load(path, insecure) {
            Err(Error::NotFound) => {}
            other => return other,
        }
        match create(path)? {
            Some(secret) => return Ok((secret, Origin::Created)),
            // Another process published first; loop round and read its file.
            None => continue,
        }
    }
    Err(Error::io(
        "open",
        io::Error::other("machine secret disappeared repeatedly while being created"),
    ))
}

/// Loads the secret at `path` only if it exists: never creates the file or
/// its directory. For read-only callers (listing or verifying a store must
/// not leave a secret behind in a home that had none).
///
/// The checks are those of [`load_or_create`], made on the open descriptor,
/// so there is no window between "it exists" and "it is read".
///
/// # Errors
/// [`Error::NotFound`] when there is no secret (or no directory); otherwise
/// the errors of [`load_or_create`].
pub fn load_existing(path: &Path, insecure: InsecureMode) -> Result<(MachineSecret, Origin)> {
    load(path, insecure)
}

/// Opens and checks an existing secret. `Err(Error::NotFound)` when absent.
fn load(path: &Path, insecure: InsecureMode) -> Result<(MachineSecret, Origin)> {
    let invalid = |reason| Error::InvalidSecret {
        path: path.to_path_buf(),
        reason,
    };

    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let fd = match rustix::fs::open(path, flags, Mode::empty()) {
        Ok(fd) => fd,
        // Linux reports a final-component symlink under O_NOFOLLOW as ELOOP,
        // FreeBSD as EMLINK.
        Err(Errno::LOOP | Errno::MLINK) => return Err(invalid("is a symbolic link")),
        Err(e) => return Err(Error::io("open", e.into())),
    };
    let mut file = File::from(fd);
    let meta = file.metadata().map_err(|e| Error::io("fstat", e))?;

    if !meta.file_type().is_file() {
        return Err(invalid("is not a regular file"));
    }
    // A file owned by someone else could have been planted to fix our key.
    if meta.uid() != rustix::process::geteuid().as_raw() {
        return Err(invalid("is not owned by the current user"));
    }
    if meta.len() != SECRET_LEN as u64 {
        return Err(invalid("is not exactly 32 bytes"));
    }

    // Size is checked before any repair so a file we are about to reject is
    // never modified.
    let mut origin = Origin::Existing;
    let mode = meta.mode() & 0o7777;
    if mode & GROUP_OTHER_BITS != 0 {
        match insecure {
            InsecureMode::Refuse => {
                return Err(Error::InsecureSecret {
                    path: path.to_path_buf(),
                    mode,
                });
            }
            InsecureMode::Repair => {
                // fchmod on the descriptor we checked, not chmod on the path.
                file.set_permissions(Permissions::from_mode(0o600))
                    .map_err(|e| Error::io("fchmod", e))?;
                origin = Origin::Repaired;
            }
        }
    }

    let mut bytes = Zeroizing::new([0u8; SECRET_LEN]);
    file.read_exact(&mut bytes[..])
        .map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => invalid("is not exactly 32 bytes"),
            _ => Error::io("read", e),
        })?;
    // The size came from fstat; a file that grew since must not be half-used.
    let mut extra = [0u8; 1];
    if file.read(&mut extra).map_err(|e| Error::io("read", e))? != 0 {
        return Err(invalid("is not exactly 32 bytes"));
    }
    Ok((MachineSecret(bytes), origin))
}

/// Creates and publishes a new secret. `Ok(None)` when another process
/// published one first.
fn create(path: &Path) -> Result<Option<MachineSecret>> {
    let dir = parent_dir(path);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io("mkdir", e))?;

    let mut bytes = Zeroizing::new([0u8; SECRET_LEN]);
    fill_random(&mut bytes[..])?;

    let (temp, mut file) = TempFile::create(path)?;
    file.write_all(&bytes[..])
        .map_err(|e| Error::io("write", e))?;
    file.sync_all().map_err(|e| Error::io("fsync", e))?;
    drop(file);

    let published = match std::fs::hard_link(&temp.path, path) {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
        Err(e) => return Err(Error::io("link", e)),
    };
    temp.remove()?;
    // Makes the new name (and the temp name's removal) durable before anyone
    // signs with the key: a crash must not lose the secret behind a session.
    if published {
        sync_dir(dir)?;
        Ok(Some(MachineSecret(bytes)))
    } else {
        Ok(None)
    }
}

/// The directory holding `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let fd =
        rustix::fs::open(dir, flags, Mode::empty()).map_err(|e| Error::io("open", e.into()))?;
    rustix::fs::fsync(&fd).map_err(|e| Error::io("fsync", e.into()))
}

fn fill_random(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf).map_err(|e| {
        let source = match e.raw_os_error() {
            Some(code) => io::Error::from_raw_os_error(code),
            None => io::Error::other(e.to_string()),
        };
        Error::io("getrandom", source)
    })
}

/// A freshly created, exclusively owned temporary file next to the secret.
/// Dropping it removes the name, so no error path leaves a stray file.
struct TempFile {
    path: PathBuf,
    removed: bool,
}

impl TempFile {
    fn create(target: &Path) -> Result<(Self, File)> {
        let dir = parent_dir(target);
        let stem = target
            .file_name()
            .map_or_else(|| "machine_secret".into(), |n| n.to_string_lossy());
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        // O_EXCL makes the name ours alone; the random part only makes a
        // collision (and hence a retry) unlikely.
        for _ in 0..MAX_ATTEMPTS {
            let mut nonce = [0u8; 8];
            fill_random(&mut nonce)?;
            let path = dir.join(format!(".{stem}.tmp-{:016x}", u64::from_le_bytes(nonce)));
            match rustix::fs::open(&path, flags, Mode::from_raw_mode(0o600)) {
                Ok(fd) => {
                    let temp = Self {
                        path,
                        removed: false,
                    };
                    let file = File::from(fd);
                    // The umask can only clear bits from 0600; setting the
                    // mode explicitly makes it exact instead of umask-dependent.
                    file.set_permissions(Permissions::from_mode(0o600))
                        .map_err(|e| Error::io("fchmod", e))?;
                    return Ok((temp, file));
                }
                Err(Errno::EXIST) => continue,
                Err(e) => return Err(Error::io("create", e.into())),
            }
        }
        Err(Error::io(
            "create",
            io::Error::from(io::ErrorKind::AlreadyExists),
        ))
    }

    fn remove(mut self) -> Result<()> {
        self.removed = true;
        std::fs::remove_file(&self.path).map_err(|e| Error::io("unlink", e))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.removed {
            // Best effort on an error path; the original error is what matters.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
