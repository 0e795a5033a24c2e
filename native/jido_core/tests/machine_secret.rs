//! Contract tests for `jido_core::machine_secret`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use jido_core::machine_secret::{
    load_existing, load_or_create, InsecureMode, MachineSecret, Origin,
};
use jido_core::Error;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// Env var naming the secret path for the child-process half of the race test.
const CHILD_PATH_VAR: &str = "JIDO_MACHINE_SECRET_RACE_PATH";
/// Env var naming the file whose appearance starts the children.
const CHILD_GO_VAR: &str = "JIDO_MACHINE_SECRET_RACE_GO";

fn secret_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("machine_secret")
}

fn mode_of(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

fn write_with_mode(path: &Path, bytes: &[u8], mode: u32) {
    fs::write(path, bytes).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn dir_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_missing_secret_is_created_with_mode_0600_and_32_random_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = secret_path(&dir);
    let (secret, origin) = load_or_create(&path, InsecureMode::Refuse).unwrap();
    assert_eq!(origin, Origin::Created);
    assert_eq!(mode_of(&path), 0o600);
    let on_disk = fs::read(&path).unwrap();
    assert_eq!(on_disk.len(), 32);
    assert_eq!(&on_disk[..], secret.expose());
    assert_ne!(
        secret.expose(),
        &[0u8; 32],
        "the secret must be random, not zeroes"
    );
    assert_eq!(
        dir_entries(dir.path()),
        ["machine_secret"],
        "no temporary file is left behind"
    );
}

#[test]
fn two_created_secrets_differ() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (sa, _) = load_or_create(&secret_path(&a), InsecureMode::Refuse).unwrap();
    let (sb, _) = load_or_create(&secret_path(&b), InsecureMode::Refuse).unwrap();
    assert_ne!(sa.expose(), sb.expose());
}

#[test]
fn loading_an_existing_secret_returns_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = secret_path(&dir);
    let (created, _) = load_or_create(&path, InsecureMode::Refuse).unwrap();
    let (loaded, origin) = load_or_create(&path, InsecureMode::Refuse).unwrap();
    assert_eq!(origin, Origin::Existing);
    assert_eq!(created.expose(), loaded.expose());
}

#[test]
fn a_secret_written_by_someone_else_with_mode_0600_is_loaded_verbatim() {
    let dir = tempfile::tempdir().unwrap();
    let path = secret_path(&dir);
    let bytes: Vec<u8> = (0u8..32).collect();
    write_with_mode(&path, &bytes, 0o600);
    let (secret, origin) = load_or_create(&path, InsecureMode::Refuse).unwrap();
    assert_eq!(origin, Origin::Existing);
    assert_eq!(&secret.expose()[..], &bytes[..]);
}

#[test]
fn a_missing_parent_directory_is_created_with_mode_0700() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home").join(".jido_code");
    let path = home.join("machine_secret");
    let (_, origin) = load_or_create(&path, InsecureMode::Refuse).unwrap();
    assert_eq!(origin, Origin::Created);
    assert_eq!(mode_of(&home), 0o700);
    assert_eq!(mode_of(&path), 0o600);
}

#[test]
fn a_symlink_in_place_of_the_secret_is_refused_and_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let path = secret_path(&dir);
    let target = dir.path().join("attacker_chosen");
    write_with_mode(&target, &[9u8; 32], 0o600);
    symlink(&target, &path).unwrap();
    let err = load_or_create(&path, InsecureMode::Repair).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidSecret {
                reason: "is a symbolic link",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn a_dangling_symlink_in_place_of_the_secret_is_refused_not_created_through() {
    let dir = tempfile::tempdir().unwrap();
    let path = secret_path(&dir);
    let target = dir.path().join("would_be_created");
    symlink(&target, &path).unwrap();
    let err = load_or_create(&path, InsecureMode::Refuse).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidSecret {
                reason: "is a symbolic link",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!target.exists(), "nothing may be written through the link");
}

#[test]
fn a_secret_of_the_wrong_size_is_refused() {
    for len in [0usize, 16, 31, 33, 64] {
        let dir = tempfile::tempdir().unwrap();
        let path = secret_path(&dir);
        write_with_mode(&path, &vec![1u8; len], 0o600);
        let err = load_or_create(&path, InsecureMode::Repair).unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidSecret {
                    reason: "is not exactly 32 bytes",
                    ..
                }
            ),
            "{len}: {err:?}"
        );
        assert_eq!(
            fs::read(&path).unwrap().len(),
            len,
            "a refused secret is left untouched"
        );
    }
}

#[test]
fn a_group_readable_secret_is_refused_under_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let path = secret_path(&dir);
    write_with_mode(&path, &[3u8; 32], 0o644);
    let err = load_or_create(&path, InsecureMode::Refuse).unwrap_err();
    match err {
        Error::InsecureSecret { path: p, mode } => {
            assert_eq!(p, path);
            assert_eq!(mode, 0o644);
        }
        other => panic!("expected InsecureSecret, got {other:?}"),
    }
    assert_eq!(mode_of(&path), 0o644, "refusing must not change the file");
}

#[test]
fn an_insecure_secret_is_repaired_to_0600_under_repair() {
    for mode in [0o644, 0o640, 0o604, 0o660, 0o666, 0o700] {
        let dir = tempfile::tempdir().unwrap();
        let path = secret_path(&dir);
        write_with_mode(&path, &[4u8; 32], mode);
        let (secret, origin) = load_or_create(&path, InsecureMode::Repair).unwrap();
        let expected = if mode & 0o077 != 0 {
            Origin::Repaired
        } else {
            Origin::Existing
        };
        assert_eq!(origin, expected, "mode {mode:o}");
        assert_eq!(secret.expose(), &[4u8; 32]);
        if mode & 0o077 != 0 {
            assert_eq!(mode_of(&path), 0o600, "mode {mode:o}");
        }
        let (_, again) = load_or_create(&path, InsecureMode::Refuse)
            .expect("a repaired secret loads under Refuse");
        assert_eq!(again, Origin::Existing);
    }
}

#[test]
fn a_directory_in_place_of_the_secret_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = secret_path(&dir);
    fs::create_dir(&path).unwrap();
    let err = load_or_create(&path, InsecureMode::Repair).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidSecret {
                reason: "is not a regular file",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn a_fifo_in_place_of_the_secret_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let path = secret_path(&dir);
    common::mkfifo(&path);
    let err = load_or_create(&path, InsecureMode::Repair).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidSecret {
                reason: "is not a regular file",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn debug_output_never_shows_the_secret() {
    let secret = MachineSecret::from_bytes([0xab; 32]);
    let shown = format!("{secret:?}");
    assert_eq!(shown, "MachineSecret(<redacted>)");
    assert!(!shown.contains("ab") && !shown.contains("171"));
}

/// The child-process half of the race test. A no-op unless started by
/// [`concurrent_creators_in_threads_and_processes_all_get_one_secret`].
#[test]
fn race_child_process_entry_point() {
    let (Some(path), Some(go)) = (
        std::env::var_os(CHILD_PATH_VAR),
        std::env::var_os(CHILD_GO_VAR),
    ) else {
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !Path::new(&go).exists() {
        assert!(Instant::now() < deadline, "parent never said go");
        std::thread::yield_now();
    }
    let (secret, _) = load_or_create(Path::new(&path), InsecureMode::Refuse).unwrap();
    println!("RACE_SECRET={}", hex(secret.expose()));
}

#[test]
fn concurrent_creators_in_threads_and_processes_all_get_one_secret() {
    const THREADS: usize = 16;
    const CHILDREN: usize = 2;

    for _round in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let secret_dir = dir.path().join("home");
        let path = secret_dir.join("machine_secret");
        let go = dir.path().join("go");

        // Children re-run this test binary, filtered to the entry point above.
        let exe = std::env::current_exe().unwrap();
        let children: Vec<_> = (0..CHILDREN)
            .map(|_| {
                std::process::Command::new(&exe)
                    .args([
                        "--exact",
                        "race_child_process_entry_point",
                        "--nocapture",
                        "--test-threads=1",
                    ])
                    .env(CHILD_PATH_VAR, &path)
                    .env(CHILD_GO_VAR, &go)
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();

        let barrier = Arc::new(Barrier::new(THREADS + 1));
        let threads: Vec<_> = (0..THREADS)
            .map(|_| {
                let (barrier, path) = (Arc::clone(&barrier), path.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    let (secret, origin) = load_or_create(&path, InsecureMode::Refuse).unwrap();
                    (*secret.expose(), origin)
                })
            })
            .collect();
        fs::write(&go, b"").unwrap();
        barrier.wait();

        let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let on_disk = fs::read(&path).unwrap();
        for (bytes, _) in &results {
            assert_eq!(
                &bytes[..],
                &on_disk[..],
                "every thread sees the published secret"
            );
        }
        let created = results
            .iter()
            .filter(|(_, o)| *o == Origin::Created)
            .count();
        assert!(
            created <= 1,
            "at most one thread created the secret, {created} did"
        );

        for child in children {
            let out = child.wait_with_output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "child failed: {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            // The harness may print "test ... " on the same line, so search.
            let at = stdout
                .find("RACE_SECRET=")
                .expect("child printed its secret")
                + "RACE_SECRET=".len();
            let printed = stdout.get(at..at + 64).expect("a full 32-byte hex secret");
            assert_eq!(
                printed,
                hex(&on_disk),
                "child processes see the published secret"
            );
        }

        assert_eq!(
            dir_entries(&secret_dir),
            ["machine_secret"],
            "no temporary file is left behind"
        );
        assert_eq!(mode_of(&path), 0o600);
    }
}

// ---- the home directory ---------------------------------------------------------

#[test]
fn a_home_writable_by_others_is_refused_or_repaired_and_a_missing_one_is_reported() {
    use jido_core::machine_secret::{check_home, HomeCheck};
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    assert_eq!(
        check_home(&home, InsecureMode::Refuse).unwrap(),
        HomeCheck::Missing
    );
    fs::create_dir(&home).unwrap();
    fs::set_permissions(&home, fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(
        check_home(&home, InsecureMode::Refuse).unwrap(),
        HomeCheck::Secure
    );

    fs::set_permissions(&home, fs::Permissions::from_mode(0o777)).unwrap();
    let refused = check_home(&home, InsecureMode::Refuse);
    assert!(
        matches!(refused, Err(Error::InsecureHome { mode: 0o777, .. })),
        "{refused:?}"
    );
    assert_eq!(
        check_home(&home, InsecureMode::Repair).unwrap(),
        HomeCheck::Repaired { mode: 0o777 }
    );
    assert_eq!(mode_of(&home), 0o755);
}

#[test]
fn a_home_that_is_a_file_is_refused() {
    use jido_core::machine_secret::check_home;
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    fs::write(&home, b"x").unwrap();
    let result = check_home(&home, InsecureMode::Repair);
    assert!(
        matches!(result, Err(Error::InsecureHome { .. })),
        "{result:?}"
    );
}

// ---- reading without creating ----------------------------------------------

#[test]
fn load_existing_of_a_missing_secret_is_not_found_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let result = load_existing(&home.join("machine_secret"), InsecureMode::Refuse);
    assert!(
        matches!(result, Err(jido_core::Error::NotFound)),
        "{result:?}"
    );
    assert!(!home.exists(), "load_existing created the home");
}

#[test]
fn load_existing_reads_the_secret_load_or_create_made() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("machine_secret");
    let (created, _) = load_or_create(&path, InsecureMode::Refuse).unwrap();
    let (loaded, origin) = load_existing(&path, InsecureMode::Refuse).unwrap();
    assert_eq!(origin, Origin::Existing);
    assert_eq!(created.expose(), loaded.expose());
}
