//! Atoms shared by the NIFs.

rustler::atoms! {
    ok,
    error,
    nil,
    signed,
    unsigned,
    existing,
    created,
    repaired,
    secure,
    missing,
    file,
    directory,
    symlink,
    other,
    io_error,
    rate_limit_exceeded,
    keys,
    memory_bytes,
}
