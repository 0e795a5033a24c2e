//! One resumer per session: the lock is exclusive within a process and across
//! processes, follows the inode, refuses links and FIFOs, and never deletes a
//! file it did not lock.
//!
//! The cross-process test re-runs this test binary as a child with `--exact
//! <name>` and [`ROLE`] set to the test's name; the same test function then
//! plays the child's part (the pattern of `tests/atomic_write.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use jido_core::machine_secret::MachineSecret;
use jido_core::session::{self, Limits, UnsignedFiles};
use jido_core::session_lock::{self, lock, LockedSession};
use jido_core::signing::{SignatureState, SigningKey};
use jido_core::{json, Error};
use std::collections::BTreeSet;
use std::env;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Barrier};
use std::thread;
use std::time::Duration;

/// Set in a child process to the name of the test it serves.
const ROLE: &str = "JIDO_SESSION_LOCK_TEST_ROLE";
/// The session file the child locks.
const CHILD_PATH: &str = "JIDO_SESSION_LOCK_TEST_PATH";
/// What the child prints once it holds the lock.
const LOCKED_MARKER: &str = "JIDO_CHILD_HOLDS_THE_LOCK";
/// How long an operation may take before the test calls it a hang.
const HANG: Duration = Duration::from_secs(30);

// ---- helpers ---------------------------------------------------------------

fn key() -> SigningKey {
    SigningKey::derive(&MachineSecret::from_bytes([1; 32]), b"s", None)
}

/// Saves a signed session `{"id": id, "n": n}` at `dir/{id}.json`.
fn saved(dir: &Path, id: &str, n: u32) -> PathBuf {
    let path = dir.join(format!("{id}.json"));
    save_at(&path, id, n);
    path
}

fn save_at(path: &Path, id: &str, n: u32) {
    let doc = json::parse(format!(r#"{{"id":"{id}","n":{n}}}"#).as_bytes(), 64).unwrap();
    session::save(path, doc, &key(), Limits::default()).unwrap();
}

/// The `n` member of the session at `path`, loaded without a lock.
fn n_on_disk(path: &Path) -> i64 {
    n_of(&session::load(path, &key(), Limits::default(), UnsignedFiles::Accept).unwrap())
}

/// [`LockedSession::load`] with the default limits, unsigned files accepted.
fn load(locked: &mut LockedSession) -> jido_core::Result<session::Loaded> {
    locked.load(&key(), Limits::default(), UnsignedFiles::Accept)
}

fn n_of(loaded: &session::Loaded) -> i64 {
    loaded
        .document
        .to_value()
        .get("n")
        .unwrap()
        .as_i64()
        .unwrap()
}

/// Every name in `dir`, sorted.
fn names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

#[track_caller]
fn assert_locked(result: jido_core::Result<LockedSession>) {
    assert!(matches!(result, Err(Error::Locked)), "{result:?}");
}

/// Runs `lock` on a thread and fails (instead of hanging the suite) if it
/// does not return within [`HANG`].
fn lock_within_deadline(path: PathBuf) -> jido_core::Result<LockedSession> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(lock(&path));
    });
    rx.recv_timeout(HANG)
        .expect("lock blocked instead of refusing")
}

// ---- the happy path ----------------------------------------------------------

#[test]
fn lock_load_remove_deletes_the_file_and_leaves_nothing_in_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = saved(dir.path(), "a", 1);
    let size = fs::metadata(&path).unwrap().len();

    let mut locked = lock(&path).unwrap();
    assert_eq!(locked.path(), path);
    let loaded = load(&mut locked).unwrap();
    assert_eq!(loaded.signature, SignatureState::Signed);
    assert_eq!(
        loaded.document.to_value().get("id").unwrap().as_str(),
        Some("a")
    );
    assert_eq!(n_of(&loaded), 1);
    assert_eq!(loaded.size, size);
    locked.remove().unwrap();

    assert!(!path.exists());
    assert_eq!(names(dir.path()), set(&[]));
}

#[test]
fn load_reads_the_whole_file_every_time_it_is_called() {
    let dir = tempfile::tempdir().unwrap();
    let path = saved(dir.path(), "a", 1);
    let size = fs::metadata(&path).unwrap().len();
    let mut locked = lock(&path).unwrap();
    let mut reload = || {
        let loaded = load(&mut locked).unwrap();
        (loaded.document.to_value(), loaded.size)
    };
    let first = reload();
    let second = reload();
    let on_disk = json::parse(&fs::read(&path).unwrap(), 64).unwrap();
    assert_eq!(first, (on_disk, size));
    assert_eq!(first, second);
}

#[test]
fn a_locked_file_over_the_size_limit_is_refused_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = saved(dir.path(), "a", 1);
    let size = fs::metadata(&path).unwrap().len();
    let limits = Limits {
        max_file_size: size - 1,
        ..Limits::default()
    };
    let mut locked = lock(&path).unwrap();
    let result = locked.load(&key(), limits, UnsignedFiles::Accept);
    match result {
        Err(Error::FileTooLarge { size: s, limit }) => assert_eq!((s, limit), (size, size - 1)),
        other => panic!("expected FileTooLarge, got {other:?}"),
    }
    drop(locked);
    assert!(path.exists());
}

#[test]
fn a_tampered_file_fails_verification_under_the_lock_and_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = saved(dir.path(), "a", 1);
    let original = fs::read_to_string(&path).unwrap();
    let tampered = original.replace("\"n\": 1", "\"n\": 2");
    assert_ne!(tampered, original);
    fs::write(&path, &tampered).unwrap();

    let mut locked = lock(&path).unwrap();
    let result = load(&mut locked);
    assert!(
        matches!(result, Err(Error::SignatureMismatch)),
        "{result:?}"
    );
    drop(locked);
    assert_eq!(fs::read_to_string(&path).unwrap(), tampered);
}

// ---- exclusivity -------------------------------------------------------------

#[test]
fn a_second_lock_in_the_same_process_is_refused_while_the_first_is_held() {
    let dir = tempfile::tempdir().unwrap();
    let path = saved(dir.path(), "a", 1);

    let first = lock(&path).unwrap();
    assert_locked(lock(&path));
    assert_locked(lock(&path));
    drop(first);
    let second = lock(&path).unwrap();
    assert_locked(lock(&path));
    drop(second);
}

#[test]
fn dropping_a_lock_without_remove_keeps_the_file_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = saved(dir.path(), "a", 1);
    let before = fs::read(&path).unwrap();

    let mut locked = lock(&path).unwrap();
    load(&mut locked).unwrap();
    drop(locked);

    assert_eq!(fs::read(&path).unwrap(), before);
    assert_eq!(names(dir.path()), set(&["a.json"]));
    lock(&path).unwrap().remove().unwrap();
    assert!(!path.exists());
}

#[test]
fn a_lock_taken_after_another_holder_removed_the_file_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = saved(dir.path(), "a", 1);
    lock(&path).unwrap().remove().unwrap();
    let result = lock(&path);
    assert!(matches!(result, Err(Error::NotFound)), "{result:?}");
}

#[test]
fn a_lock_held_by_another_process_is_refused_until_that_process_releases_it() {
    const TEST: &str = "a_lock_held_by_another_process_is_refused_until_that_process_releases_it";
    if env::var_os(ROLE).is_some_and(|role| role == TEST) {
        // The child: hold the lock until the parent closes our stdin (which
        // also happens if the parent dies, so no orphan outlives the suite).
        let path = env::var_os(CHILD_PATH).unwrap();
        let _held = lock(Path::new(&path)).unwrap();
        println!("\n{LOCKED_MARKER}");
        io::stdout().flush().unwrap();
        io::stdin().read_to_end(&mut Vec::new()).unwrap();
        return;
    }

    let dir = tempfile::tempdir().unwrap();
    let path = saved(dir.path(), "a", 1);
    let mut child = Command::new(env::current_exe().unwrap())
        .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
        .env(ROLE, TEST)
        .env(CHILD_PATH, &path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Read the child's stdout on a thread: tell us when the marker appears,
    // then keep collecting until the child exits.
    let stdout = child.stdout.take().unwrap();
    let (marker_tx, marker_rx) = mpsc::channel();
    let reader = thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if line.contains(LOCKED_MARKER) {
                let _ = marker_tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    if marker_rx.recv_timeout(HANG).is_err() {
        drop(child.stdin.take());
        let out = child.wait_with_output().unwrap();
        panic!(
            "child never held the lock ({}):\n{}\n{}",
            out.status,
            reader.join().unwrap(),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    assert_locked(lock(&path));
    assert_locked(lock(&path));

    // Closing its stdin is the child's signal to release and exit.
    drop(child.stdin.take());
    let status = child.wait().unwrap();
    let stdout = reader.join().unwrap();
    assert!(status.success(), "child failed ({status}):\n{stdout}");

    let mut locked = lock(&path).unwrap();
    assert_eq!(n_of(&load(&mut locked).unwrap()), 1);
    locked.remove().unwrap();
    assert!(!path.exists());
}

#[test]
fn of_eight_threads_resuming_one_session_at_once_exactly_one_removes_it() {
    const THREADS: usize = 8;
    const ROUNDS: usize = 50;
    let key = Arc::new(key());

    for round in 0..ROUNDS {
        let dir = tempfile::tempdir().unwrap();
        let path = saved(dir.path(), "a", 1);
        let barrier = Arc::new(Barrier::new(THREADS));
        let threads: Vec<_> = (0..THREADS)
            .map(|_| {
                let (barrier, key, path) = (Arc::clone(&barrier), Arc::clone(&key), path.clone());
                thread::spawn(move || {
                    barrier.wait();
                    // Err at `lock` is a lost race; anything after is not.
                    let mut locked = lock(&path)?;
                    Ok(locked
                        .load(&key, Limits::default(), UnsignedFiles::Accept)
                        .and_then(|_| locked.remove()))
                })
            })
            .collect();
        let results: Vec<jido_core::Result<jido_core::Result<()>>> =
            threads.into_iter().map(|t| t.join().unwrap()).collect();

        // Exactly one thread got the lock at all, and it loaded and removed
        // the file: a thread that opened the file before the winner removed
        // it and locked it after must see that the name is gone, not load
        // the deleted inode.
        let winners = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(winners, 1, "round {round}: {results:?}");
        for result in &results {
            assert!(
                matches!(result, Ok(Ok(())) | Err(Error::Locked | Error::NotFound)),
                "round {round}: {results:?}"
            );
        }
        assert_eq!(names(dir.path()), set(&[]), "round {round}");
    }
}

// ---- saves during a resume -----------------------------------------------------

#[test]
fn a_save_between_lock_and_remove_is_never_deleted_by_the_stale_resume() {
    let dir = tempfile::tempdir().unwrap();
    let path = saved(dir.path(), "a", 1);

    let mut locked = lock(&path).unwrap();
    save_at(&path, "a", 2);
    // The resumer still reads the inode it locked, not the newer save...
    assert_eq!(n_of(&load(&mut locked).unwrap()), 1);
    // ...and refuses to delete the newer save, which stays complete and alone.
    let result = locked.remove();
    assert!(matches!(result, Err(Error::Locked)), "{result:?}");
    assert_eq!(n_on_disk(&path), 2);
    assert_eq!(names(dir.path()), set(&["a.json"]));

    // The newer save is an ordinary session file again: lockable, removable.
    let mut again = lock(&path).unwrap();
    assert_eq!(n_of(&load(&mut again).unwrap()), 2);
    again.remove().unwrap();
    assert_eq!(names(dir.path()), set(&[]));
}

#[test]
fn a_save_does_not_wait_for_a_held_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = saved(dir.path(), "a", 1);
    let _locked = lock(&path).unwrap();
    // A resumer holds the old inode; a save replaces the name regardless,
    // and the new file is not locked by the old holder.
    save_at(&path, "a", 2);
    assert_eq!(n_on_disk(&path), 2);
    let mut newer = lock(&path).unwrap();
    assert_eq!(n_of(&load(&mut newer).unwrap()), 2);
}

#[test]
fn remove_after_the_file_was_deleted_behind_the_lock_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = saved(dir.path(), "a", 1);
    let locked = lock(&path).unwrap();
    fs::remove_file(&path).unwrap();
    let result = locked.remove();
    assert!(matches!(result, Err(Error::NotFound)), "{result:?}");
    assert_eq!(names(dir.path()), set(&[]));
}

// ---- what is refused -------------------------------------------------------------

#[test]
fn a_symlink_is_refused_and_its_target_neither_locked_nor_touched() {
    let dir = tempfile::tempdir().unwrap();
    let target = saved(dir.path(), "target", 1);
    let link = dir.path().join("link.json");
    symlink(&target, &link).unwrap();

    let result = lock(&link);
    assert!(matches!(result, Err(Error::Symlink)), "{result:?}");
    // The target was never locked: it can be locked at once.
    lock(&target).unwrap();
    assert_eq!(n_on_disk(&target), 1);
}

#[test]
fn a_fifo_is_refused_as_not_a_regular_file_without_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.json");
    common::mkfifo(&fifo);
    let result = lock_within_deadline(fifo);
    assert!(matches!(result, Err(Error::NotRegularFile)), "{result:?}");
}

#[test]
fn a_directory_is_refused_as_not_a_regular_file() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("sub.json");
    fs::create_dir(&sub).unwrap();
    let result = lock(&sub);
    assert!(matches!(result, Err(Error::NotRegularFile)), "{result:?}");
}

#[test]
fn a_missing_file_or_directory_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let result = lock(&dir.path().join("missing.json"));
    assert!(matches!(result, Err(Error::NotFound)), "{result:?}");
    let result = lock(&dir.path().join("missing").join("a.json"));
    assert!(matches!(result, Err(Error::NotFound)), "{result:?}");
}

// ---- recovery of set-aside files after a crash --------------------------------

const ASIDE: &str = ".a.json.0123456789abcdef.removing";

#[test]
fn a_file_set_aside_by_a_crashed_remove_is_put_back_when_its_name_is_free() {
    let dir = tempfile::tempdir().unwrap();
    let path = saved(dir.path(), "a", 1);
    fs::rename(&path, dir.path().join(ASIDE)).unwrap();

    assert_eq!(session_lock::recover_set_aside(dir.path()).unwrap(), 1);
    assert_eq!(names(dir.path()), set(&["a.json"]));
    assert_eq!(n_on_disk(&path), 1);
}

#[test]
fn a_set_aside_file_older_than_a_saved_file_of_its_name_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let path = saved(dir.path(), "a", 1);
    fs::rename(&path, dir.path().join(ASIDE)).unwrap();
    save_at(&path, "a", 2);

    assert_eq!(session_lock::recover_set_aside(dir.path()).unwrap(), 1);
    assert_eq!(names(dir.path()), set(&["a.json"]));
    assert_eq!(n_on_disk(&path), 2);
}

#[test]
fn a_set_aside_file_whose_resumer_still_holds_the_lock_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = saved(dir.path(), "a", 1);
    let held = lock(&path).unwrap();
    // As `remove` does between its rename and its unlink.
    fs::rename(&path, dir.path().join(ASIDE)).unwrap();

    assert_eq!(session_lock::recover_set_aside(dir.path()).unwrap(), 0);
    assert_eq!(names(dir.path()), set(&[ASIDE]));
    drop(held);
    assert_eq!(session_lock::recover_set_aside(dir.path()).unwrap(), 1);
    assert_eq!(names(dir.path()), set(&["a.json"]));
}

#[test]
fn recovery_touches_neither_symlinks_nor_names_of_another_shape() {
    let dir = tempfile::tempdir().unwrap();
    let target = saved(dir.path(), "t", 1);
    symlink(&target, dir.path().join(ASIDE)).unwrap();
    fs::write(dir.path().join(".b.json.0123456789ABCDEF.removing"), "x").unwrap();
    fs::write(dir.path().join("c.json.removing"), "x").unwrap();

    assert_eq!(session_lock::recover_set_aside(dir.path()).unwrap(), 0);
    assert_eq!(
        names(dir.path()),
        set(&[
            ASIDE,
            ".b.json.0123456789ABCDEF.removing",
            "c.json.removing",
            "t.json"
        ])
    );
    assert!(matches!(
        session_lock::recover_set_aside(&dir.path().join("missing")),
        Err(Error::NotFound)
    ));
}

// ---- keeping the file aside while a resumed session runs ----------------------

#[test]
fn a_file_set_aside_is_neither_named_nor_listed_and_discard_deletes_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = saved(dir.path(), "a", 1);
    let aside = lock(&path).unwrap().set_aside().unwrap();
    assert!(!path.exists());
    let hidden = names(dir.path());
    assert_eq!(hidden.len(), 1);
    assert!(hidden
        .iter()
        .all(|n| n.starts_with(".a.json.") && n.ends_with(".removing")));
    // Held: a start-up recovery (in this or another process) leaves it alone.
    assert_eq!(session_lock::recover_set_aside(dir.path()).unwrap(), 0);

    aside.discard().unwrap();
    assert_eq!(names(dir.path()), set(&[]));
}

#[test]
fn a_set_aside_file_restored_comes_back_unless_a_newer_save_took_the_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = saved(dir.path(), "a", 1);
    lock(&path).unwrap().set_aside().unwrap().restore().unwrap();
    assert_eq!(names(dir.path()), set(&["a.json"]));
    assert_eq!(n_on_disk(&path), 1);

    let aside = lock(&path).unwrap().set_aside().unwrap();
    save_at(&path, "a", 2);
    aside.restore().unwrap();
    assert_eq!(names(dir.path()), set(&["a.json"]));
    assert_eq!(n_on_disk(&path), 2);
}

#[test]
fn a_set_aside_file_dropped_as_a_crash_would_is_put_back_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = saved(dir.path(), "a", 1);
    drop(lock(&path).unwrap().set_aside().unwrap());
    assert!(!path.exists());

    assert_eq!(session_lock::recover_set_aside(dir.path()).unwrap(), 1);
    assert_eq!(n_on_disk(&path), 1);
}
