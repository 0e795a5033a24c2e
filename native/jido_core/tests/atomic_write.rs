//! Crash-safe replacement: content, modes, cleanup on failure, stale temp
//! files, and a real `SIGKILL` test.
//!
//! Tests that need process-wide state (the umask, a file-size rlimit) or a
//! process to kill re-run this test binary as a child with `--exact <name>`
//! and [`ROLE`] set to the test's name; the same test function then plays the
//! child's part.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use jido_core::atomic_write::{
    create_private_dir, is_temp_file_name, remove_stale_temp_files, write_atomic,
};
use jido_core::Error;
use std::collections::BTreeSet;
use std::env;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Set in a child process to the name of the test it serves.
const ROLE: &str = "JIDO_ATOMIC_WRITE_TEST_ROLE";

// ---- helpers ---------------------------------------------------------------

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
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

/// Whether this process is the child for `test`.
fn is_child_for(test: &str) -> bool {
    env::var_os(ROLE).is_some_and(|role| role == test)
}

/// Arguments that make this test binary run `test` alone, as a child.
fn child_args(test: &str) -> [&str; 5] {
    [
        "--exact",
        test,
        "--nocapture",
        "--test-threads=1",
        "--quiet",
    ]
}

/// A command that re-runs this test binary for `test` alone, as its child.
fn child_command(test: &str) -> Command {
    let mut cmd = Command::new(env::current_exe().unwrap());
    cmd.args(child_args(test)).env(ROLE, test);
    cmd
}

/// Runs a child to completion and fails with its output if it failed.
fn assert_child_passes(mut cmd: Command) {
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // Guard against a child that ran no test (a renamed test, a bad filter)
    // and so "passed" vacuously.
    assert!(stdout.contains("1 passed"), "child ran no test:\n{stdout}");
}

/// Runs `body` under each of `umasks` in its own child process, so the
/// process-wide umask change cannot disturb tests running on other threads.
/// `test` must be the name of the calling test.
fn under_umasks_in_children(test: &str, umasks: &[u32], body: impl Fn(u32)) {
    if is_child_for(test) {
        let umask = u32::from_str_radix(&env::var("JIDO_UMASK").unwrap(), 8).unwrap();
        rustix::process::umask(rustix::fs::Mode::from_raw_mode(umask));
        body(umask);
        return;
    }
    for umask in umasks {
        let mut cmd = child_command(test);
        cmd.env("JIDO_UMASK", format!("{umask:o}"));
        assert_child_passes(cmd);
    }
}

fn assert_io(result: jido_core::Result<()>, op: &str, kind: io::ErrorKind) -> io::Error {
    match result {
        Err(Error::Io { op: o, source }) if o == op && source.kind() == kind => source,
        other => panic!("expected Io {{ {op}, {kind:?} }}, got {other:?}"),
    }
}

// ---- writing ---------------------------------------------------------------

#[test]
fn write_atomic_creates_a_new_file_with_the_exact_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    write_atomic(&path, b"{\"a\":1}").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"{\"a\":1}");
}

#[test]
fn write_atomic_replaces_existing_content_entirely() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    fs::write(&path, vec![b'x'; 10_000]).unwrap();
    write_atomic(&path, b"short").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"short");
    write_atomic(&path, b"").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"");
}

#[test]
fn the_written_file_is_mode_0600_even_when_it_replaces_a_0644_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    fs::write(&path, b"old").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    write_atomic(&path, b"new").unwrap();
    assert_eq!(mode(&path), 0o600);
}

#[test]
fn the_written_file_is_mode_0600_under_a_strict_or_an_open_umask() {
    let test = "the_written_file_is_mode_0600_under_a_strict_or_an_open_umask";
    under_umasks_in_children(test, &[0o277, 0o000], |umask| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        write_atomic(&path, b"x").unwrap();
        assert_eq!(mode(&path), 0o600, "umask {umask:o}");
        assert_eq!(fs::read(&path).unwrap(), b"x");
    });
}

#[test]
fn no_temp_file_is_left_after_successful_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    for i in 0..20 {
        write_atomic(&path, format!("{{\"i\":{i}}}").as_bytes()).unwrap();
    }
    assert_eq!(names(dir.path()), set(&["s.json"]));
}

#[test]
fn a_symlink_at_the_target_is_replaced_and_its_target_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    fs::write(&victim, b"precious").unwrap();
    let path = dir.path().join("s.json");
    symlink(&victim, &path).unwrap();
    write_atomic(&path, b"new").unwrap();
    assert!(fs::symlink_metadata(&path).unwrap().file_type().is_file());
    assert_eq!(fs::read(&path).unwrap(), b"new");
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
}

#[test]
fn a_directory_at_the_target_fails_at_rename_and_stays_intact_without_temp() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    fs::create_dir(&path).unwrap();
    fs::write(path.join("inside"), b"kept").unwrap();
    assert_io(
        write_atomic(&path, b"new"),
        "rename",
        io::ErrorKind::IsADirectory,
    );
    assert_eq!(fs::read(path.join("inside")).unwrap(), b"kept");
    assert_eq!(names(dir.path()), set(&["s.json"]));
}

/// Regression: `export ID -o /missing/dir/x.json` said "no such session
/// file" because a missing parent directory surfaced as `NotFound`.
#[test]
fn a_missing_parent_directory_is_directory_not_found_not_a_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let result = write_atomic(&dir.path().join("no/s.json"), b"x");
    assert!(
        matches!(result, Err(Error::DirectoryNotFound)),
        "{result:?}"
    );
}

#[test]
fn a_path_without_a_file_name_is_invalid_input() {
    let dir = tempfile::tempdir().unwrap();
    assert_io(
        write_atomic(Path::new("/"), b"x"),
        "write",
        io::ErrorKind::InvalidInput,
    );
    assert_io(
        write_atomic(&dir.path().join(".."), b"x"),
        "write",
        io::ErrorKind::InvalidInput,
    );
}

#[test]
fn a_name_too_long_for_a_temp_file_fails_and_keeps_the_old_file() {
    // 250 bytes is a legal name; with the 22 bytes of temp decoration it is
    // not. The failure is at temp creation, before anything is written.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a".repeat(250));
    fs::write(&path, b"old").unwrap();
    let source = assert_io(
        write_atomic(&path, b"new"),
        "create_temp",
        io::ErrorKind::InvalidFilename,
    );
    assert_eq!(
        source.raw_os_error(),
        Some(rustix::io::Errno::NAMETOOLONG.raw_os_error())
    );
    assert_eq!(fs::read(&path).unwrap(), b"old");
    assert_eq!(names(dir.path()).len(), 1);
}

#[test]
fn a_read_only_directory_refuses_the_write_and_keeps_the_old_file() {
    if rustix::process::geteuid().is_root() {
        // Root bypasses directory permissions, so there is nothing to refuse;
        // the mid-write failure test below covers cleanup under root too.
        eprintln!("skipped: running as root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    fs::write(&path, b"old").unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o500)).unwrap();
    let result = write_atomic(&path, b"new");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
    assert_io(result, "create_temp", io::ErrorKind::PermissionDenied);
    assert_eq!(fs::read(&path).unwrap(), b"old");
    assert_eq!(names(dir.path()), set(&["s.json"]));
}

#[test]
fn a_write_failing_midway_removes_the_temp_file_and_keeps_the_old_file() {
    // A file-size rlimit makes `write` fail with EFBIG after the temp file
    // has been created and partly written — the path every disk-full or I/O
    // error takes. The child runs under `ulimit -f` with SIGXFSZ ignored
    // (otherwise the signal would kill it instead of failing the write).
    let test = "a_write_failing_midway_removes_the_temp_file_and_keeps_the_old_file";
    if is_child_for(test) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        fs::write(&path, b"old").unwrap();
        let source = assert_io(
            write_atomic(&path, &vec![b'n'; 1 << 20]),
            "write",
            io::ErrorKind::FileTooLarge,
        );
        assert_eq!(
            source.raw_os_error(),
            Some(rustix::io::Errno::FBIG.raw_os_error())
        );
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(names(dir.path()), set(&["s.json"]));
        return;
    }
    // `ulimit -f` counts 512-byte blocks in dash: 64 KiB, well under 1 MiB.
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", "ulimit -f 128 && trap '' XFSZ && exec \"$@\"", "sh"])
        .arg(env::current_exe().unwrap())
        .args(child_args(test))
        .env(ROLE, test);
    assert_child_passes(cmd);
}

// ---- private directories ---------------------------------------------------

#[test]
fn create_private_dir_makes_every_missing_component_0700_under_a_usual_or_open_umask() {
    let test = "create_private_dir_makes_every_missing_component_0700_under_a_usual_or_open_umask";
    under_umasks_in_children(test, &[0o022, 0o000], |umask| {
        let dir = tempfile::tempdir().unwrap();
        create_private_dir(&dir.path().join("a/b/c")).unwrap();
        for p in ["a", "a/b", "a/b/c"] {
            assert_eq!(
                mode(&dir.path().join(p)),
                0o700,
                "{p} under umask {umask:o}"
            );
        }
    });
}

#[test]
fn create_private_dir_accepts_an_existing_directory_without_chmod() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("sessions");
    fs::create_dir(&sub).unwrap();
    fs::set_permissions(&sub, fs::Permissions::from_mode(0o755)).unwrap();
    create_private_dir(&sub).unwrap();
    create_private_dir(&sub).unwrap();
    assert_eq!(mode(&sub), 0o755);
}

#[test]
fn create_private_dir_refuses_a_file_in_the_way_as_already_exists() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions");
    fs::write(&path, b"not a dir").unwrap();
    assert_io(
        create_private_dir(&path),
        "create_dir",
        io::ErrorKind::AlreadyExists,
    );
    assert_eq!(fs::read(&path).unwrap(), b"not a dir");
}

#[test]
fn create_private_dir_under_a_file_is_not_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    fs::write(&file, b"").unwrap();
    assert_io(
        create_private_dir(&file.join("sessions")),
        "create_dir",
        io::ErrorKind::NotADirectory,
    );
}

// ---- stale temp files ------------------------------------------------------

const HEX16: &str = "0123456789abcdef";

#[test]
fn remove_stale_temp_files_removes_exactly_the_temp_name_shape() {
    let dir = tempfile::tempdir().unwrap();
    let ours = [
        format!(".a.json.{HEX16}.tmp"),
        ".a.json.ffffffffffffffff.tmp".to_owned(),
        format!(".b.json.{HEX16}.tmp"),
        format!(".a.b.{HEX16}.tmp"),
    ];
    let not_ours = [
        "a.json".to_owned(),
        format!("a.json.{HEX16}.tmp"),              // no leading dot
        ".a.json.0123456789ABCDEF.tmp".to_owned(),  // uppercase hex
        ".a.json.0123456789abcdeg.tmp".to_owned(),  // not hex
        ".a.json.0123456789abcde.tmp".to_owned(),   // 15 digits
        ".a.json.0123456789abcdef0.tmp".to_owned(), // 17 digits
        format!(".a.json{HEX16}.tmp"),              // no dot before the digits
        format!(".a.json.{HEX16}.tmpx"),            // wrong suffix
        format!(".a.json.{HEX16}.TMP"),
        format!(".{HEX16}.tmp"),  // no target name
        format!("..{HEX16}.tmp"), // empty target name
        ".a.json.tmp".to_owned(),
    ];
    for name in ours.iter().chain(&not_ours) {
        fs::write(dir.path().join(name), b"x").unwrap();
    }
    assert_eq!(
        remove_stale_temp_files(dir.path(), None).unwrap(),
        ours.len()
    );
    let left: BTreeSet<String> = not_ours.iter().cloned().collect();
    assert_eq!(names(dir.path()), left);
    assert_eq!(remove_stale_temp_files(dir.path(), None).unwrap(), 0);
}

#[test]
fn remove_stale_temp_files_for_one_target_spares_other_targets_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let a = format!(".a.json.{HEX16}.tmp");
    let b = format!(".b.json.{HEX16}.tmp");
    let ab = format!(".xa.json.{HEX16}.tmp");
    for name in [&a, &b, &ab] {
        fs::write(dir.path().join(name), b"x").unwrap();
    }
    let removed = remove_stale_temp_files(dir.path(), Some(OsStr::new("a.json"))).unwrap();
    assert_eq!(removed, 1);
    assert_eq!(names(dir.path()), set(&[&b, &ab]));
}

#[test]
fn remove_stale_temp_files_never_removes_or_follows_symlinks_or_directories() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join(format!(".a.json.{HEX16}.tmp"));
    fs::write(&victim, b"precious").unwrap();
    let link = format!(".a.json.{HEX16}.tmp");
    symlink(&victim, dir.path().join(&link)).unwrap();
    let dangling = ".a.json.aaaaaaaaaaaaaaaa.tmp".to_owned();
    symlink(dir.path().join("nowhere"), dir.path().join(&dangling)).unwrap();
    let subdir = ".a.json.bbbbbbbbbbbbbbbb.tmp".to_owned();
    fs::create_dir(dir.path().join(&subdir)).unwrap();
    fs::write(dir.path().join(&subdir).join("inside"), b"kept").unwrap();

    assert_eq!(remove_stale_temp_files(dir.path(), None).unwrap(), 0);
    assert_eq!(names(dir.path()), set(&[&link, &dangling, &subdir]));
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    assert_eq!(
        fs::read(dir.path().join(&subdir).join("inside")).unwrap(),
        b"kept"
    );
}

#[test]
fn remove_stale_temp_files_in_a_missing_directory_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let result = remove_stale_temp_files(&dir.path().join("none"), None);
    assert!(matches!(result, Err(Error::NotFound)), "{result:?}");
}

#[test]
fn remove_stale_temp_files_spares_a_temp_file_whose_writer_holds_its_lock() {
    let dir = tempfile::tempdir().unwrap();
    let name = format!(".a.json.{HEX16}.tmp");
    let path = dir.path().join(&name);
    fs::write(&path, b"being written").unwrap();
    // A live writer, in this process or another: it holds the flock.
    let writer = fs::File::open(&path).unwrap();
    rustix::fs::flock(&writer, rustix::fs::FlockOperation::LockExclusive).unwrap();

    assert_eq!(remove_stale_temp_files(dir.path(), None).unwrap(), 0);
    let removed = remove_stale_temp_files(dir.path(), Some(OsStr::new("a.json"))).unwrap();
    assert_eq!(removed, 0);
    assert_eq!(names(dir.path()), set(&[&name]));

    // The writer dies (its descriptor closes): now it is a leftover. Other
    // tests of this binary spawn processes, and a child forked while
    // `writer` was open holds a copy of its descriptor, and so the lock,
    // until it execs: allow that moment, boundedly.
    drop(writer);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let removed = loop {
        let removed = remove_stale_temp_files(dir.path(), None).unwrap();
        if removed > 0 || std::time::Instant::now() > deadline {
            break removed;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    assert_eq!(removed, 1);
    assert!(names(dir.path()).is_empty());
}

#[test]
fn sweeps_running_alongside_writers_of_one_file_never_fail_a_write() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("s.json");
    let stop = std::sync::atomic::AtomicBool::new(false);
    thread::scope(|scope| {
        // A store starting up again and again, and writers finishing saves.
        let sweeper = scope.spawn(|| {
            let mut sweeps = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                remove_stale_temp_files(dir.path(), None).unwrap();
                sweeps += 1;
            }
            sweeps
        });
        let writers: Vec<_> = (0..4u8)
            .map(|w| {
                let target = &target;
                scope.spawn(move || {
                    let bytes = vec![w; 256 << 10];
                    (0..50)
                        .filter_map(|_| write_atomic(target, &bytes).err())
                        .map(|e| e.to_string())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let failed: Vec<String> = writers
            .into_iter()
            .flat_map(|writer| writer.join().unwrap())
            .collect();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(sweeper.join().unwrap() > 0);
        assert!(
            failed.is_empty(),
            "{} writes failed: {:?}",
            failed.len(),
            failed.first()
        );
    });
    let bytes = fs::read(&target).unwrap();
    assert_eq!(bytes.len(), 256 << 10);
    assert!(bytes.iter().all(|&b| b == bytes[0]));
    assert_eq!(names(dir.path()), set(&["s.json"]));
}

#[test]
fn is_temp_file_name_matches_only_with_the_given_target() {
    let name = format!(".s.json.{HEX16}.tmp");
    assert!(is_temp_file_name(OsStr::new(&name), None));
    assert!(is_temp_file_name(
        OsStr::new(&name),
        Some(OsStr::new("s.json"))
    ));
    assert!(!is_temp_file_name(
        OsStr::new(&name),
        Some(OsStr::new("json"))
    ));
    assert!(!is_temp_file_name(
        OsStr::new(&name),
        Some(OsStr::new(".s.json"))
    ));
    assert!(!is_temp_file_name(OsStr::new("s.json"), None));
    assert!(!is_temp_file_name(OsStr::new(".tmp"), None));
}

// ---- crash safety ----------------------------------------------------------

/// Size of each generation's file: big enough that a kill usually lands in
/// the middle of `write` or `fsync`.
const CRASH_FILE_LEN: usize = 8 << 20;
const CRASH_HEADER: &[u8] = b"GENERATION:";
const CRASH_TARGET: &str = "session.json";
const CRASH_ROUNDS: usize = 24;

/// Fills `buf` with generation `gen`: the header, `gen` as 8 LE bytes, then
/// every byte `gen % 251`.
fn fill_generation(buf: &mut [u8], gen: u64) {
    let (head, body) = buf.split_at_mut(CRASH_HEADER.len() + 8);
    head[..CRASH_HEADER.len()].copy_from_slice(CRASH_HEADER);
    head[CRASH_HEADER.len()..].copy_from_slice(&gen.to_le_bytes());
    body.fill((gen % 251) as u8);
}

/// The generation `bytes` holds, if it is one complete generation.
fn complete_generation(bytes: &[u8]) -> Result<u64, String> {
    if bytes.len() != CRASH_FILE_LEN {
        return Err(format!("length {} != {CRASH_FILE_LEN}", bytes.len()));
    }
    let (head, body) = bytes.split_at(CRASH_HEADER.len() + 8);
    if &head[..CRASH_HEADER.len()] != CRASH_HEADER {
        return Err("header missing".into());
    }
    let gen = u64::from_le_bytes(head[CRASH_HEADER.len()..].try_into().unwrap());
    let fill = (gen % 251) as u8;
    match body.iter().position(|&b| b != fill) {
        None => Ok(gen),
        Some(i) => Err(format!(
            "generation {gen}: byte {i} of the body is {}",
            body[i]
        )),
    }
}

/// A delay in `0..max_ms` ms from the OS generator, so kills land at varied
/// points across runs.
fn random_delay(max_ms: u64) -> Duration {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).unwrap();
    Duration::from_millis(u64::from_le_bytes(b) % max_ms)
}

#[test]
fn killing_the_writer_at_any_moment_leaves_one_complete_generation() {
    let test = "killing_the_writer_at_any_moment_leaves_one_complete_generation";
    if is_child_for(test) {
        // The writer: save generation after generation until killed. The
        // deadline only stops an orphan if the parent dies first.
        let dir = PathBuf::from(env::var_os("JIDO_CRASH_DIR").unwrap());
        let mut gen: u64 = env::var("JIDO_CRASH_FIRST_GEN").unwrap().parse().unwrap();
        let target = dir.join(CRASH_TARGET);
        let mut buf = vec![0u8; CRASH_FILE_LEN];
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            fill_generation(&mut buf, gen);
            write_atomic(&target, &buf).unwrap();
            gen += 1;
        }
        return;
    }

    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join(CRASH_TARGET);
    let mut buf = vec![0u8; CRASH_FILE_LEN];
    fill_generation(&mut buf, 0);
    write_atomic(&target, &buf).unwrap();
    drop(buf);

    let mut last_gen = 0;
    let mut rounds_with_temp = 0;
    for round in 0..CRASH_ROUNDS {
        let mut child = child_command(test)
            .env("JIDO_CRASH_DIR", dir.path())
            .env("JIDO_CRASH_FIRST_GEN", (last_gen + 1).to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        thread::sleep(Duration::from_millis(20) + random_delay(250));
        // `Child::kill` is SIGKILL: no destructor, no cleanup, like a crash.
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert!(
            !status.success(),
            "round {round}: writer exited by itself: {status}"
        );

        let bytes = fs::read(&target).unwrap();
        let gen = complete_generation(&bytes).unwrap_or_else(|e| {
            panic!("round {round}: target is not one complete generation: {e}")
        });
        assert!(
            gen >= last_gen,
            "round {round}: generation went back from {last_gen} to {gen}"
        );
        last_gen = gen;

        let strays: Vec<String> = names(dir.path())
            .into_iter()
            .filter(|n| n != CRASH_TARGET)
            .collect();
        assert!(
            strays.len() <= 1,
            "round {round}: several temp files: {strays:?}"
        );
        for name in &strays {
            assert!(
                is_temp_file_name(OsStr::new(name), Some(OsStr::new(CRASH_TARGET))),
                "round {round}: unexpected file {name}"
            );
        }
        rounds_with_temp += strays.len();
        let removed = remove_stale_temp_files(dir.path(), Some(OsStr::new(CRASH_TARGET))).unwrap();
        assert_eq!(removed, strays.len(), "round {round}");
        assert_eq!(names(dir.path()), set(&[CRASH_TARGET]), "round {round}");
    }
    eprintln!(
        "{CRASH_ROUNDS} kills: reached generation {last_gen}, {rounds_with_temp} kills left a temp file"
    );
    // The writer must actually have completed saves, or the kills only ever
    // hit a process that had not started writing.
    assert!(last_gen > 0, "the writer never completed a save");
}

// ---- errors as Erlang's `file` names them ------------------------------------

#[test]
fn os_errors_carry_their_posix_name_and_other_errors_none() {
    let named = |errno: i32| Error::io("open", io::Error::from_raw_os_error(errno)).posix_name();
    assert_eq!(
        named(rustix::io::Errno::ACCESS.raw_os_error()),
        Some("eacces")
    );
    assert_eq!(named(rustix::io::Errno::PERM.raw_os_error()), Some("eperm"));
    assert_eq!(
        named(rustix::io::Errno::NOSPC.raw_os_error()),
        Some("enospc")
    );
    assert_eq!(named(rustix::io::Errno::ROFS.raw_os_error()), Some("erofs"));
    assert_eq!(named(rustix::io::Errno::PROTO.raw_os_error()), None);
    assert_eq!(Error::NotFound.posix_name(), None);
    assert_eq!(Error::Symlink.posix_name(), None);
}
