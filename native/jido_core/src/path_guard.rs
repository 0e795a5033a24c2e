//! Project directory validation and descriptor pinning.
//!
//! A resumed session names the project directory its tools will work in. That
//! string comes from a file on disk, so it is treated as hostile until the
//! directory it names has been opened and checked. Each rule stops one attack:
//!
//! | rule | attack it stops |
//! |---|---|
//! | absolute | a relative path is resolved against whatever the VM's working directory happens to be |
//! | no NUL byte | C APIs truncate at NUL, so the checked string and the opened one would differ |
//! | no `.` / `..` component | `/allowed/../etc` passes a string prefix check on the allowed root and escapes it |
//! | no component is a symlink | a link planted anywhere in the path redirects the session outside what was checked; saved paths are stored canonical (see [`canonicalize`]), so a link that appears later is an attack |
//! | is a directory | a FIFO or device in place of the project would block or misbehave |
//! | owned by the current user or root | a directory planted by another user (say under `/tmp`) with tool configuration or hooks inside |
//! | not group/other-writable unless sticky | another user could add or replace files in the project between checks; in a sticky directory they can still create entries but cannot rename or remove ours |
//! | inside the allowed roots, outside the denied ones | the session pointing its tools at the JidoCode home (the machine secret, other sessions) or elsewhere the operator forbade |
//!
//! # Descriptors, not strings
//!
//! Checking a path string and then using the string is a race: between the
//! check and the use, anyone who can write to a directory on the path can
//! rename it away or swap in a symlink (CVE-2022-21658, Rust std's
//! `remove_dir_all`, was exactly this). The fix std adopted, and the shape
//! cap-std is built on, is to walk the path one component at a time with
//! `openat(parent_fd, name, O_NOFOLLOW | O_DIRECTORY)`, so every step is taken
//! relative to a directory already opened and checked, and a symlink makes the
//! open fail (`ENOTDIR` with `O_PATH`, `ELOOP` without) instead of being
//! followed. The failure itself is the security decision; the `statat` that
//! follows it only picks the error variant.
//!
//! [`pin`] keeps the final descriptor plus the device, inode, owner and mode of
//! every directory on the path. [`PinnedDir::revalidate`] walks the path again
//! the same way and compares: a rename, replacement, symlink swap or
//! permission change anywhere on the path since the pin gives
//! [`PathViolation::Changed`]. Later code can open files relative to
//! [`PinnedDir`]'s descriptor (it implements [`AsFd`]) rather than by name.
//!
//! `openat2(RESOLVE_NO_SYMLINKS)` could resolve the whole path in one call on
//! Linux ≥ 5.6, but it cannot say which rule broke nor yield the per-component
//! identities `revalidate` compares; the walk costs one `openat` and one
//! `fstat` per component, microseconds for a typical project depth.
//!
//! # Limits
//!
//! - `/` itself passes: it is root-owned and not group/other-writable. Use
//!   [`PathPolicy::allowed_roots`] to confine sessions.
//! - Owner and mode are enforced on the final directory only. Ancestors are
//!   covered by the symlink refusal and by `revalidate`, which notices any
//!   change to them, but a world-writable ancestor still lets another user
//!   *cause* a `Changed` refusal.
//! - Policy roots are compared lexically, so they must be canonical (no
//!   symlinks); a bind mount of a denied directory elsewhere is not detected.
//!
//! ```
//! use jido_core::path_guard::{self, PathPolicy};
//!
//! let dir = tempfile::tempdir()?;
//! // At save time: store the canonical path.
//! let project = path_guard::canonicalize(dir.path())?;
//! // At resume time: check and hold it open, then compare after starting.
//! let policy = PathPolicy { allowed_roots: Some(vec![project.clone()]), ..PathPolicy::default() };
//! let pinned = path_guard::pin(&project, &policy)?;
//! pinned.revalidate()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::{Error, PathViolation, Result};
use rustix::fs::{fstat, openat, statat, AtFlags, FileType, Mode, OFlags, Stat, CWD};
use rustix::io::Errno;
use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Rules a project directory must satisfy besides the fixed ones.
///
/// Roots are compared component by component with the (lexically checked)
/// path, after ignoring empty components and trailing slashes, so `/a/bc` is
/// not under `/a/b`. Callers pass canonical roots (as [`canonicalize`] makes
/// them): a root containing a symlink would never match the symlink-free paths
/// this module accepts.
#[derive(Debug, Clone, Default)]
pub struct PathPolicy {
    /// If set, the directory must be one of these or inside one. `Some(vec![])`
    /// refuses everything.
    pub allowed_roots: Option<Vec<PathBuf>>,
    /// The directory must not be one of these nor inside one (the JidoCode
    /// home, so a session's tools cannot reach the secret or other sessions).
    pub denied_roots: Vec<PathBuf>,
}

/// What a directory on the path was when pinned: enough to tell whether a
/// later walk reached the same directory with the same owner and permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Snapshot {
    dev: u64,
    ino: u64,
    uid: u32,
    mode: u32,
}

impl Snapshot {
    // `Stat` field widths differ between targets (`c_ulong` on Linux, `i32`
    // `st_dev` and `u16` `st_mode` on macOS), so a plain cast is the portable
    // widening; on some targets it is a no-op.
    #[allow(clippy::unnecessary_cast)]
    fn of(st: &Stat) -> Self {
        Self {
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            uid: st.st_uid as u32,
            mode: st.st_mode as u32,
        }
    }
}

/// A validated directory held open, plus what every directory on its path
/// was when it was pinned.
///
/// The descriptor is opened with `O_PATH` on Linux: it can serve as the `dirfd`
/// of `openat` and be `fstat`ed, but not read or written itself.
pub struct PinnedDir {
    path: PathBuf,
    fd: OwnedFd,
    /// The pinned directory at pin time (also the last entry of `chain`).
    snapshot: Snapshot,
    /// `/` first, the pinned directory last.
    chain: Vec<Snapshot>,
    policy: PathPolicy,
}

impl fmt::Debug for PinnedDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let snap = &self.snapshot;
        f.debug_struct("PinnedDir")
            .field("path", &self.path)
            .field("dev", &snap.dev)
            .field("ino", &snap.ino)
            .field("uid", &snap.uid)
            .field("mode", &format_args!("{:o}", snap.mode))
            .finish_non_exhaustive()
    }
}

impl PinnedDir {
    /// The validated path, exactly as given to [`pin`].
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The denied roots of the policy the directory was pinned under (the
    /// JidoCode home): [`crate::beneath`] refuses to enter them.
    pub fn denied_roots(&self) -> &[PathBuf] {
        &self.policy.denied_roots
    }

    /// The `(device, inode)` of the pinned directory.
    pub fn identity(&self) -> (u64, u64) {
        (self.snapshot.dev, self.snapshot.ino)
    }

    /// Walks the path again from `/` exactly as [`pin`] does and checks that
    /// it reaches the pinned directory through the same directories, with
    /// owner and mode unchanged, and that the pinned directory itself is
    /// unchanged.
    ///
    /// # Errors
    /// Only [`PathViolation::Changed`]: any failure of the new walk (the path
    /// is gone, now contains a symlink, fails a rule) or any difference in
    /// device, inode, owner or mode of any directory on the path.
    pub fn revalidate(&self) -> Result<()> {
        let changed = || Error::path(PathViolation::Changed);
        // The fresh descriptor is dropped on return: only its identity matters.
        let (_fresh_fd, fresh, fresh_chain) =
            open_checked(&self.path, &self.policy).map_err(|_| changed())?;
        let pinned_now = snapshot(&self.fd).map_err(|_| changed())?;
        if fresh != self.snapshot || pinned_now != self.snapshot || fresh_chain != self.chain {
            return Err(changed());
        }
        Ok(())
    }
}

impl AsFd for PinnedDir {
    /// The pinned directory's descriptor, for `openat` relative to it.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Validates `path` against every rule and `policy`, and pins it: the
/// returned [`PinnedDir`] holds the directory open and remembers what it was.
///
/// Order: lexical rules, then policy (lexical, so nothing outside the allowed
/// roots is ever touched), then the walk, then owner and mode of the final
/// directory.
///
/// # Errors
/// - [`PathViolation::NotAbsolute`], [`PathViolation::ContainsNul`],
///   [`PathViolation::Traversal`]: the string itself is refused.
/// - [`PathViolation::Denied`], [`PathViolation::OutsideAllowedRoots`]: the
///   policy refuses it.
/// - [`PathViolation::NotFound`], [`PathViolation::NotDirectory`],
///   [`PathViolation::Symlink`]: a component is missing, not a directory, or a
///   link.
/// - [`PathViolation::NotOwned`], [`PathViolation::InsecurePermissions`]: the
///   final directory's owner or mode.
/// - [`Error::Io`] for other OS errors (`EACCES` on a component, `EMFILE`) and
///   for a policy root that is not absolute or has `.`/`..` components.
pub fn pin(path: &Path, policy: &PathPolicy) -> Result<PinnedDir> {
    let (fd, snapshot, chain) = open_checked(path, policy)?;
    Ok(PinnedDir {
        path: path.to_path_buf(),
        fd,
        snapshot,
        chain,
        policy: policy.clone(),
    })
}

/// Checks `path` exactly as [`pin`] does and releases the descriptor.
///
/// # Errors
/// As [`pin`].
pub fn validate(path: &Path, policy: &PathPolicy) -> Result<()> {
    pin(path, policy).map(drop)
}

/// Resolves `path` to its canonical form (symlinks, `.` and `..` resolved),
/// for storing a project path when a session is saved so that a symlink found
/// on it later can be refused as an attack.
///
/// # Errors
/// [`PathViolation::NotAbsolute`] (resolve relative paths in Elixir with
/// `Path.expand/1` first, not against the VM's working directory),
/// [`PathViolation::ContainsNul`], [`PathViolation::NotFound`],
/// [`PathViolation::NotDirectory`] (a non-final component is a file),
/// [`PathViolation::Symlink`] (a symlink loop), [`Error::Io`] otherwise.
pub fn canonicalize(path: &Path) -> Result<PathBuf> {
    let bytes = path.as_os_str().as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(Error::path(PathViolation::NotAbsolute));
    }
    if bytes.contains(&0) {
        return Err(Error::path(PathViolation::ContainsNul));
    }
    std::fs::canonicalize(path).map_err(|e| match e.raw_os_error().map(Errno::from_raw_os_error) {
        Some(Errno::NOENT) => Error::path(PathViolation::NotFound),
        Some(Errno::NOTDIR) => Error::path(PathViolation::NotDirectory),
        Some(Errno::LOOP) => Error::path(PathViolation::Symlink),
        _ => Error::io("canonicalize", e),
    })
}

/// The whole check, shared by [`pin`] and [`PinnedDir::revalidate`] so both
/// walk the same way. Returns the final descriptor, its snapshot, and the
/// snapshots of every directory from `/` to it.
fn open_checked(path: &Path, policy: &PathPolicy) -> Result<(OwnedFd, Snapshot, Vec<Snapshot>)> {
    let components = lexical_components(path)?;
    check_policy(&components, policy)?;
    let (fd, chain) = walk(&components)?;
    // `walk` fstat'ed the final descriptor last.
    let snap = *chain
        .last()
        .ok_or_else(|| Error::path(PathViolation::NotFound))?;
    // O_DIRECTORY already guarantees this; kept so the rule does not rest on
    // a flag far away.
    if FileType::from_raw_mode(snap.mode as _) != FileType::Directory {
        return Err(Error::path(PathViolation::NotDirectory));
    }
    if snap.uid != rustix::process::geteuid().as_raw() && snap.uid != 0 {
        return Err(Error::path(PathViolation::NotOwned));
    }
    const GROUP_OTHER_WRITE: u32 = 0o022;
    const STICKY: u32 = 0o1000;
    if snap.mode & GROUP_OTHER_WRITE != 0 && snap.mode & STICKY == 0 {
        return Err(Error::path(PathViolation::InsecurePermissions));
    }
    Ok((fd, snap, chain))
}

/// Splits an absolute path into its components on the raw bytes, refusing
/// NUL and `.`/`..`. Empty components (`//`, trailing `/`) are skipped, as the
/// kernel does.
fn lexical_components(path: &Path) -> Result<Vec<&OsStr>> {
    let bytes = path.as_os_str().as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(Error::path(PathViolation::NotAbsolute));
    }
    if bytes.contains(&0) {
        return Err(Error::path(PathViolation::ContainsNul));
    }
    let components: Vec<&OsStr> = bytes
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty())
        .map(OsStr::from_bytes)
        .collect();
    if components
        .iter()
        .any(|c| c.as_bytes() == b"." || c.as_bytes() == b"..")
    {
        return Err(Error::path(PathViolation::Traversal));
    }
    Ok(components)
}

fn check_policy(components: &[&OsStr], policy: &PathPolicy) -> Result<()> {
    for root in &policy.denied_roots {
        if components.starts_with(&policy_root(root)?) {
            return Err(Error::path(PathViolation::Denied));
        }
    }
    if let Some(allowed) = &policy.allowed_roots {
        let mut inside = false;
        for root in allowed {
            inside |= components.starts_with(&policy_root(root)?);
        }
        if !inside {
            return Err(Error::path(PathViolation::OutsideAllowedRoots));
        }
    }
    Ok(())
}

/// A policy root's components. A malformed root is a programmer error and
/// refuses every path (fail closed) instead of silently matching nothing,
/// which for a denied root would deny nothing.
fn policy_root(root: &Path) -> Result<Vec<&OsStr>> {
    lexical_components(root).map_err(|_| {
        Error::io(
            "path_policy",
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "policy root must be absolute, without NUL, `.` or `..`",
            ),
        )
    })
}

// O_PATH (Linux, FreeBSD) opens without read permission and never touches the
// directory's contents; elsewhere O_RDONLY with O_DIRECTORY is the closest.
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
const DIR_ACCESS: OFlags = OFlags::PATH;
#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
const DIR_ACCESS: OFlags = OFlags::RDONLY;

/// Opens `/` then each component relative to its parent's descriptor, never
/// following a symlink, and records each directory's identity.
fn walk(components: &[&OsStr]) -> Result<(OwnedFd, Vec<Snapshot>)> {
    let flags = DIR_ACCESS | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let mut fd = openat(CWD, "/", flags, Mode::empty()).map_err(|e| Error::io("open", e.into()))?;
    let mut chain = Vec::with_capacity(components.len() + 1);
    chain.push(snapshot(&fd)?);
    for &name in components {
        fd = match openat(&fd, name, flags | OFlags::NOFOLLOW, Mode::empty()) {
            Ok(child) => child,
            Err(e) => return Err(classify_open_error(&fd, name, e)),
        };
        chain.push(snapshot(&fd)?);
    }
    Ok((fd, chain))
}

fn snapshot(fd: &OwnedFd) -> Result<Snapshot> {
    fstat(fd)
        .map(|st| Snapshot::of(&st))
        .map_err(|e| Error::io("fstat", e.into()))
}

/// Names the refusal. With `O_PATH | O_NOFOLLOW | O_DIRECTORY` Linux reports a
/// symlink as `ENOTDIR`; without `O_PATH` it is `ELOOP`. Either way the open
/// already failed; the `statat` here only chooses the message, so racing it
/// can at worst mislabel a refusal, never turn it into an acceptance.
#[cold]
fn classify_open_error(parent: &OwnedFd, name: &OsStr, e: Errno) -> Error {
    match e {
        Errno::NOENT => Error::path(PathViolation::NotFound),
        Errno::NOTDIR | Errno::LOOP => match statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => {
                Error::path(PathViolation::Symlink)
            }
            _ => Error::path(PathViolation::NotDirectory),
        },
        other => Error::io("openat", other.into()),
    }
}
