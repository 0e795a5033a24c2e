//! The one error type of the core.
//!
//! Every fallible function in this crate returns [`Result<T>`]. Variants are
//! grouped by the concern that raises them; the binding crate maps each one to
//! a stable Erlang term (`{:error, atom}` or `{:error, {atom, detail}}`), so a
//! new variant is a change of the public contract.

use std::io;
use std::path::PathBuf;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a project directory was refused by [`crate::path_guard`].
///
/// Each variant is its own Erlang atom (`:project_path_<snake_case>`), so the
/// user is told exactly which rule a path broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PathViolation {
    /// The path is relative.
    NotAbsolute,
    /// The path contains a NUL byte (it would be truncated by the kernel).
    ContainsNul,
    /// The path has a `.` or `..` component.
    Traversal,
    /// A component does not exist.
    NotFound,
    /// A component (or the final one) is not a directory.
    NotDirectory,
    /// A component is a symbolic link; stored paths are canonical, so a link
    /// that appears later is an attack.
    Symlink,
    /// The directory is owned by neither the current user nor root.
    NotOwned,
    /// The directory is writable by group or other and not sticky.
    InsecurePermissions,
    /// The directory is outside every configured allowed root.
    OutsideAllowedRoots,
    /// The directory is inside a denied root (the JidoCode home itself).
    Denied,
    /// Re-validation found a different directory than the pinned one.
    Changed,
}

impl PathViolation {
    /// The stable snake_case name used for the Erlang atom and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotAbsolute => "project_path_not_absolute",
            Self::ContainsNul => "project_path_contains_nul",
            Self::Traversal => "project_path_traversal",
            Self::NotFound => "project_path_not_found",
            Self::NotDirectory => "project_path_not_directory",
            Self::Symlink => "project_path_symlink",
            Self::NotOwned => "project_path_not_owned",
            Self::InsecurePermissions => "project_path_insecure_permissions",
            Self::OutsideAllowedRoots => "project_path_outside_allowed_roots",
            Self::Denied => "project_path_denied",
            Self::Changed => "project_path_changed",
        }
    }
}

impl std::fmt::Display for PathViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a path relative to a pinned project directory was refused by
/// [`crate::beneath`].
///
/// Each variant is its own Erlang atom ([`BeneathViolation::as_str`]): the
/// assistant's file tools report exactly which rule a path broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BeneathViolation {
    /// The path is absolute: it would not be resolved beneath the project.
    NotRelative,
    /// The path contains a NUL byte.
    ContainsNul,
    /// The path has a `..` component: it could climb out of the project.
    Traversal,
    /// A component is a symbolic link (never followed beneath a pin).
    Symlink,
    /// A component is the JidoCode home (its secret and sessions).
    InJidoHome,
    /// A component before the last one is not a directory.
    NotDirectory,
}

impl BeneathViolation {
    /// The stable snake_case name used for the Erlang atom and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotRelative => "path_not_relative",
            Self::ContainsNul => "invalid_path",
            Self::Traversal => "path_escapes_boundary",
            Self::Symlink => "path_symlink",
            Self::InJidoHome => "path_in_jido_home",
            Self::NotDirectory => "path_not_directory",
        }
    }
}

impl std::fmt::Display for BeneathViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything that can go wrong in the core.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ---- bounded reading -------------------------------------------------
    /// The file does not exist.
    #[error("file not found")]
    NotFound,
    /// The directory a file was to be written into does not exist: the
    /// caller named a missing directory, which is not a missing file.
    #[error("directory not found")]
    DirectoryNotFound,
    /// The final path component is a symbolic link (refused, never followed).
    #[error("file is a symbolic link")]
    Symlink,
    /// The path names a FIFO, socket, device or directory.
    #[error("not a regular file")]
    NotRegularFile,
    /// The file is larger than the caller's limit. `size` is what `fstat`
    /// reported, or the bytes actually read when the file grew during the read.
    #[error("file is {size} bytes, over the {limit}-byte limit")]
    FileTooLarge {
        /// Observed size in bytes.
        size: u64,
        /// The limit that was exceeded.
        limit: u64,
    },
    /// Any other operating-system error, with the operation that failed.
    #[error("{op}: {source}")]
    Io {
        /// Short name of the failed operation (`"open"`, `"fsync"`, ...).
        op: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    // ---- JSON ------------------------------------------------------------
    /// The bytes are not a JSON document this crate accepts: syntax error,
    /// invalid UTF-8, duplicate key, nesting over the limit, a number outside
    /// the IEEE-754 exact range.
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    /// The document parsed but its top level is not an object.
    #[error("JSON document is not an object")]
    NotAnObject,
    /// A value cannot be written as JSON (NaN or infinite float).
    #[error("value cannot be represented in JSON: {0}")]
    Unrepresentable(&'static str),

    // ---- signatures ------------------------------------------------------
    /// The `signature` member is present but is not base64 of a 32-byte MAC.
    #[error("signature is malformed")]
    MalformedSignature,
    /// The document was signed with a different key (its `key_id` is not ours).
    #[error("document was signed by another installation (key id {found})")]
    ForeignSignature {
        /// The `key_id` found in the document.
        found: String,
    },
    /// The MAC does not match: the document was altered after signing.
    #[error("signature verification failed")]
    SignatureMismatch,
    /// The document carries no signature and the caller refuses unsigned
    /// documents (signatures are enforced).
    #[error("document is not signed")]
    MissingSignature,

    // ---- machine secret --------------------------------------------------
    /// The machine secret file is readable or writable by group/other.
    #[error("machine secret {path} has insecure mode {mode:o}; expected 0600")]
    InsecureSecret {
        /// Path of the secret file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The machine secret file exists but is not a 32-byte regular file owned
    /// by the current user.
    #[error("machine secret {path} is invalid: {reason}")]
    InvalidSecret {
        /// Path of the secret file.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// The JidoCode home is not a directory owned by the current user and
    /// closed to group/other writes ([`crate::machine_secret::check_home`]).
    #[error("JidoCode home {path} {reason} (mode {mode:o})")]
    InsecureHome {
        /// The home directory.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
        /// Its permission bits.
        mode: u32,
    },

    // ---- writing ---------------------------------------------------------
    /// The serialized document would exceed the size limit; nothing was written.
    #[error("document is {size} bytes, over the {limit}-byte limit")]
    DocumentTooLarge {
        /// Serialized size in bytes.
        size: u64,
        /// The limit.
        limit: u64,
    },

    // ---- rate limiting -----------------------------------------------------
    /// A rate-limit key (or operation name) is longer than
    /// [`crate::rate_limit::MAX_KEY_LEN`].
    #[error("rate-limit key is {size} bytes, over the {limit}-byte limit")]
    KeyTooLarge {
        /// Size of the key in bytes.
        size: usize,
        /// The limit.
        limit: usize,
    },

    // ---- locking -----------------------------------------------------------
    /// Another process (or descriptor) holds the exclusive lock on the file.
    #[error("file is locked by another process")]
    Locked,

    // ---- project paths ---------------------------------------------------
    /// A project directory broke a rule of [`crate::path_guard`].
    #[error("{0}")]
    Path(PathViolation),
    /// A path beneath a pinned directory broke a rule of [`crate::beneath`].
    #[error("{0}")]
    Beneath(BeneathViolation),
}

impl Error {
    /// Wraps an `io::Error`, turning `NotFound` into [`Error::NotFound`].
    pub fn io(op: &'static str, source: io::Error) -> Self {
        if source.kind() == io::ErrorKind::NotFound {
            Self::NotFound
        } else {
            Self::Io { op, source }
        }
    }

    /// The POSIX name (`"eacces"`, `"enospc"`, ...) of an operating-system
    /// error, for callers that report errors the way Erlang's `file` module
    /// does; `None` for any other error, or an OS error without a common name.
    #[must_use]
    pub fn posix_name(&self) -> Option<&'static str> {
        let Self::Io { source, .. } = self else {
            return None;
        };
        use rustix::io::Errno;
        // By errno, not `io::ErrorKind`: EPERM and EACCES share a kind, and
        // several kinds are not stable.
        let errno = Errno::from_io_error(source)?;
        Some(match errno {
            Errno::ACCESS => "eacces",
            Errno::PERM => "eperm",
            Errno::EXIST => "eexist",
            Errno::NOTDIR => "enotdir",
            Errno::ISDIR => "eisdir",
            Errno::NOTEMPTY => "enotempty",
            Errno::NOSPC => "enospc",
            Errno::DQUOT => "edquot",
            Errno::ROFS => "erofs",
            Errno::LOOP => "eloop",
            Errno::BUSY => "ebusy",
            Errno::XDEV => "exdev",
            Errno::MLINK => "emlink",
            Errno::NAMETOOLONG => "enametoolong",
            Errno::FBIG => "efbig",
            Errno::IO => "eio",
            Errno::MFILE => "emfile",
            Errno::NFILE => "enfile",
            _ => return None,
        })
    }

    /// An attack-shaped JSON refusal (duplicate key, too deep, ...).
    #[cold]
    pub fn invalid_json(detail: impl Into<String>) -> Self {
        Self::InvalidJson(detail.into())
    }

    /// An attack-shaped path refusal.
    #[cold]
    pub fn path(violation: PathViolation) -> Self {
        Self::Path(violation)
    }
}

impl From<BeneathViolation> for Error {
    #[cold]
    fn from(v: BeneathViolation) -> Self {
        Self::Beneath(v)
    }
}

impl From<PathViolation> for Error {
    #[cold]
    fn from(v: PathViolation) -> Self {
        Self::Path(v)
    }
}
