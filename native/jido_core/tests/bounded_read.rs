//! Size-gated reads: the size gate, link/FIFO/device refusal, growing files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use jido_core::bounded_read::{open_regular, read_open, read_prefix, read_regular};
use jido_core::Error;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::symlink;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// How long a refusal may take before the test calls it a hang.
const HANG: Duration = Duration::from_secs(5);

fn file_with(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, bytes).unwrap();
    path
}

/// Runs `read_regular` on a thread and fails (instead of hanging the suite)
/// if it does not return within [`HANG`].
fn read_regular_within_deadline(path: PathBuf, limit: u64) -> jido_core::Result<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(read_regular(&path, limit));
    });
    rx.recv_timeout(HANG)
        .expect("read_regular blocked instead of refusing")
}

fn assert_too_large(result: jido_core::Result<Vec<u8>>, size: u64, limit: u64) {
    match result {
        Err(Error::FileTooLarge { size: s, limit: l }) => assert_eq!((s, l), (size, limit)),
        other => panic!("expected FileTooLarge {{ {size}, {limit} }}, got {other:?}"),
    }
}

#[test]
fn a_file_of_exactly_the_limit_is_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let bytes: Vec<u8> = (0..=255).cycle().take(1000).collect();
    let path = file_with(dir.path(), "s.json", &bytes);
    assert_eq!(read_regular(&path, 1000).unwrap(), bytes);
}

#[test]
fn a_file_one_byte_over_the_limit_is_refused_with_its_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = file_with(dir.path(), "s.json", &[b'x'; 1001]);
    assert_too_large(read_regular(&path, 1000), 1001, 1000);
}

#[test]
fn an_empty_file_reads_as_no_bytes_even_with_limit_zero() {
    let dir = tempfile::tempdir().unwrap();
    let path = file_with(dir.path(), "empty.json", b"");
    assert_eq!(read_regular(&path, 0).unwrap(), b"");
    assert_eq!(read_regular(&path, 10).unwrap(), b"");
}

#[test]
fn limit_zero_refuses_a_one_byte_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = file_with(dir.path(), "one.json", b"x");
    assert_too_large(read_regular(&path, 0), 1, 0);
}

#[test]
fn a_missing_file_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let result = read_regular(&dir.path().join("nope.json"), 100);
    assert!(matches!(result, Err(Error::NotFound)), "{result:?}");
}

#[test]
fn a_missing_parent_directory_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let result = read_regular(&dir.path().join("no/such/dir/s.json"), 100);
    assert!(matches!(result, Err(Error::NotFound)), "{result:?}");
}

#[test]
fn a_file_used_as_a_directory_is_an_open_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = file_with(dir.path(), "f", b"x");
    match read_regular(&file.join("s.json"), 100) {
        Err(Error::Io { op: "open", source }) => {
            assert_eq!(
                source.raw_os_error(),
                Some(rustix::io::Errno::NOTDIR.raw_os_error())
            );
        }
        other => panic!("expected Io {{ open, ENOTDIR }}, got {other:?}"),
    }
}

#[test]
fn a_symlink_to_a_regular_file_is_refused_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let target = file_with(dir.path(), "real.json", b"{}");
    let link = dir.path().join("link.json");
    symlink(&target, &link).unwrap();
    let result = read_regular(&link, 100);
    assert!(matches!(result, Err(Error::Symlink)), "{result:?}");
    assert!(matches!(open_regular(&link), Err(Error::Symlink)));
}

#[test]
fn a_symlink_to_dev_zero_is_refused_without_reading() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("zero.json");
    symlink("/dev/zero", &link).unwrap();
    let result = read_regular_within_deadline(link, u64::MAX);
    assert!(matches!(result, Err(Error::Symlink)), "{result:?}");
}

#[test]
fn a_dangling_symlink_is_refused_as_a_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("dangling.json");
    symlink(dir.path().join("nowhere"), &link).unwrap();
    let result = read_regular(&link, 100);
    assert!(matches!(result, Err(Error::Symlink)), "{result:?}");
}

#[test]
fn a_fifo_without_a_writer_is_refused_immediately_not_waited_on() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.json");
    common::mkfifo(&fifo);
    let result = read_regular_within_deadline(fifo, 100);
    assert!(matches!(result, Err(Error::NotRegularFile)), "{result:?}");
}

#[test]
fn a_unix_socket_is_refused_as_not_a_regular_file() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("sock.json");
    let _listener = UnixListener::bind(&sock).unwrap();
    let result = read_regular_within_deadline(sock, 100);
    assert!(matches!(result, Err(Error::NotRegularFile)), "{result:?}");
}

#[test]
fn a_directory_is_refused_as_not_a_regular_file() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("sub.json");
    fs::create_dir(&sub).unwrap();
    let result = read_regular(&sub, 100);
    assert!(matches!(result, Err(Error::NotRegularFile)), "{result:?}");
}

#[test]
fn dev_null_named_directly_is_refused_as_a_device() {
    let result = read_regular_within_deadline("/dev/null".into(), 100);
    assert!(matches!(result, Err(Error::NotRegularFile)), "{result:?}");
}

#[test]
fn dev_zero_named_directly_is_refused_before_any_read() {
    let result = read_regular_within_deadline("/dev/zero".into(), u64::MAX);
    assert!(matches!(result, Err(Error::NotRegularFile)), "{result:?}");
}

#[test]
fn open_regular_reports_the_size_from_the_descriptor() {
    let dir = tempfile::tempdir().unwrap();
    let path = file_with(dir.path(), "s.json", &[7; 321]);
    let (_file, meta) = open_regular(&path).unwrap();
    assert!(meta.is_file());
    assert_eq!(meta.len(), 321);
}

#[test]
fn the_size_gate_uses_the_opened_file_even_if_the_name_is_replaced() {
    // Check-the-path-then-act would see the big replacement; we read the
    // small file we opened.
    let dir = tempfile::tempdir().unwrap();
    let path = file_with(dir.path(), "s.json", b"small");
    let (mut file, meta) = open_regular(&path).unwrap();
    let big = file_with(dir.path(), "big", &[0; 4096]);
    fs::rename(&big, &path).unwrap();
    assert_eq!(read_open(&mut file, &meta, 100).unwrap(), b"small");
}

#[test]
fn a_file_that_grows_past_the_limit_after_fstat_is_refused_with_the_bytes_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = file_with(dir.path(), "s.json", &[b'a'; 90]);
    let (mut file, meta) = open_regular(&path).unwrap();
    assert_eq!(meta.len(), 90);
    OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(&[b'b'; 1000])
        .unwrap();
    // The stale metadata passes the gate; the read itself catches the growth
    // after limit + 1 bytes, not after all 1090.
    assert_too_large(read_open(&mut file, &meta, 100), 101, 100);
}

#[test]
fn a_file_that_grows_but_stays_within_the_limit_is_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = file_with(dir.path(), "s.json", &[b'a'; 10]);
    let (mut file, meta) = open_regular(&path).unwrap();
    OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(&[b'b'; 90])
        .unwrap();
    let bytes = read_open(&mut file, &meta, 100).unwrap();
    assert_eq!(bytes.len(), 100);
}

#[test]
fn a_file_that_shrinks_after_fstat_reads_what_is_there() {
    let dir = tempfile::tempdir().unwrap();
    let path = file_with(dir.path(), "s.json", &[b'a'; 50]);
    let (mut file, meta) = open_regular(&path).unwrap();
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(5)
        .unwrap();
    assert_eq!(read_open(&mut file, &meta, 100).unwrap(), b"aaaaa");
}

#[test]
fn a_file_growing_during_reads_is_either_read_within_the_limit_or_refused() {
    const LIMIT: u64 = 64 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let path = file_with(dir.path(), "s.json", &[b'a'; 1024]);
    let writer = {
        let path = path.clone();
        thread::spawn(move || {
            let mut file = OpenOptions::new().append(true).open(&path).unwrap();
            // Grow to 4 × the limit, in small appends, while the reader runs.
            for _ in 0..256 {
                file.write_all(&[b'b'; 1024]).unwrap();
                thread::yield_now();
            }
        })
    };
    loop {
        // Checked before the read, so at least one read overlaps the writer
        // or follows it.
        let writer_done = writer.is_finished();
        match read_regular(&path, LIMIT) {
            Ok(bytes) => assert!(bytes.len() as u64 <= LIMIT, "read {} bytes", bytes.len()),
            Err(Error::FileTooLarge { size, limit }) => {
                assert_eq!(limit, LIMIT);
                assert!(size > LIMIT, "refused at size {size}");
            }
            Err(e) => panic!("unexpected error {e:?}"),
        }
        if writer_done {
            break;
        }
    }
    writer.join().unwrap();
    assert_too_large(read_regular(&path, LIMIT), 1024 + 256 * 1024, LIMIT);
}

#[test]
fn read_prefix_reads_only_the_requested_head() {
    let dir = tempfile::tempdir().unwrap();
    let bytes: Vec<u8> = (0..=255).cycle().take(10_000).collect();
    let path = file_with(dir.path(), "s.json", &bytes);
    let (mut file, _meta) = open_regular(&path).unwrap();
    assert_eq!(read_prefix(&mut file, 16).unwrap(), &bytes[..16]);
    // It reads from the current position, and stops short only at EOF.
    assert_eq!(read_prefix(&mut file, 16).unwrap(), &bytes[16..32]);
    assert_eq!(read_prefix(&mut file, usize::MAX).unwrap(), &bytes[32..]);
    assert_eq!(read_prefix(&mut file, 16).unwrap(), b"");
}
