//! Contract of `beneath`: file operations relative to a pinned directory
//! never leave it — not through `..`, an absolute path, a symlink anywhere on
//! the way, nor a swap of the project directory after the pin — and never
//! enter the JidoCode home.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use jido_core::beneath::{self, Kind};
use jido_core::path_guard::{self, PathPolicy, PinnedDir};
use jido_core::{BeneathViolation, Error, Result};
use std::fmt::Debug;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use tempfile::TempDir;

fn base() -> (TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let base = path_guard::canonicalize(tmp.path()).unwrap();
    (tmp, base)
}

fn project(base: &Path, denied: Vec<PathBuf>) -> (PathBuf, PinnedDir) {
    let dir = base.join("project");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    let policy = PathPolicy {
        allowed_roots: None,
        denied_roots: denied,
    };
    let pin = path_guard::pin(&dir, &policy).unwrap();
    (dir, pin)
}

fn violation<T: Debug>(result: Result<T>) -> BeneathViolation {
    match result {
        Err(Error::Beneath(v)) => v,
        other => panic!("expected a beneath violation, got {other:?}"),
    }
}

fn p(s: &str) -> &Path {
    Path::new(s)
}

#[test]
fn a_written_file_reads_back_and_missing_parents_are_created_beneath_the_pin() {
    let (_tmp, base) = base();
    let (dir, pin) = project(&base, vec![]);
    beneath::write(&pin, p("src/deep/notes.txt"), b"hello").unwrap();
    assert_eq!(fs::read(dir.join("src/deep/notes.txt")).unwrap(), b"hello");
    assert_eq!(
        beneath::read(&pin, p("./src//deep/notes.txt"), 64).unwrap(),
        b"hello"
    );
    let info = beneath::stat(&pin, p("src/deep/notes.txt")).unwrap();
    assert_eq!((info.kind, info.size, info.mode), (Kind::File, 5, 0o644));
}

#[test]
fn an_overwritten_file_keeps_its_permission_bits() {
    let (_tmp, base) = base();
    let (dir, pin) = project(&base, vec![]);
    fs::write(dir.join("run.sh"), b"old").unwrap();
    fs::set_permissions(dir.join("run.sh"), fs::Permissions::from_mode(0o750)).unwrap();
    beneath::write(&pin, p("run.sh"), b"new").unwrap();
    assert_eq!(beneath::stat(&pin, p("run.sh")).unwrap().mode, 0o750);
    assert_eq!(fs::read(dir.join("run.sh")).unwrap(), b"new");
}

#[test]
fn absolute_paths_nul_and_dot_dot_are_refused_before_anything_is_opened() {
    let (_tmp, base) = base();
    let (_dir, pin) = project(&base, vec![]);
    assert_eq!(
        violation(beneath::read(&pin, p("/etc/passwd"), 64)),
        BeneathViolation::NotRelative
    );
    assert_eq!(
        violation(beneath::write(&pin, p("../escape.txt"), b"x")),
        BeneathViolation::Traversal
    );
    assert_eq!(
        violation(beneath::list(&pin, p("src/../../"))),
        BeneathViolation::Traversal
    );
    assert_eq!(
        violation(beneath::stat(&pin, p("a\0b"))),
        BeneathViolation::ContainsNul
    );
    assert!(!base.join("escape.txt").exists());
}

#[test]
fn a_symlink_anywhere_on_the_path_is_refused_never_followed() {
    let (_tmp, base) = base();
    let (dir, pin) = project(&base, vec![]);
    let outside = base.join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("secret"), b"outside").unwrap();
    symlink(&outside, dir.join("linkdir")).unwrap();
    symlink(outside.join("secret"), dir.join("linkfile")).unwrap();

    for rel in ["linkdir/secret", "linkfile"] {
        assert_eq!(
            violation(beneath::read(&pin, p(rel), 64)),
            BeneathViolation::Symlink,
            "{rel}"
        );
        assert_eq!(
            violation(beneath::stat(&pin, p(rel))),
            BeneathViolation::Symlink
        );
    }
    assert_eq!(
        violation(beneath::write(&pin, p("linkdir/new"), b"x")),
        BeneathViolation::Symlink
    );
    assert_eq!(
        violation(beneath::write(&pin, p("linkfile"), b"x")),
        BeneathViolation::Symlink
    );
    assert_eq!(
        violation(beneath::list(&pin, p("linkdir"))),
        BeneathViolation::Symlink
    );
    assert!(!outside.join("new").exists());
    assert_eq!(fs::read(outside.join("secret")).unwrap(), b"outside");
}

#[test]
fn the_jido_home_inside_the_project_is_never_entered() {
    let (_tmp, base) = base();
    let home = base.join("project/.jido_code");
    let (dir, pin) = project(&base, vec![home.clone()]);
    // Created after the pin, as the first save creates it.
    fs::create_dir(&home).unwrap();
    fs::write(home.join("machine_secret"), [7u8; 32]).unwrap();

    assert_eq!(
        violation(beneath::read(&pin, p(".jido_code/machine_secret"), 64)),
        BeneathViolation::InJidoHome
    );
    assert_eq!(
        violation(beneath::write(&pin, p(".jido_code/sessions/x.json"), b"{}")),
        BeneathViolation::InJidoHome
    );
    assert_eq!(
        violation(beneath::list(&pin, p(".jido_code"))),
        BeneathViolation::InJidoHome
    );
    assert_eq!(
        violation(beneath::stat(&pin, p(".jido_code"))),
        BeneathViolation::InJidoHome
    );
    // The listing of the project shows the home's name, nothing inside it.
    let names: Vec<_> = beneath::list(&pin, p("")).unwrap();
    assert_eq!(names.len(), 1);
    assert!(!dir.join(".jido_code/sessions").exists());
}

#[test]
fn after_the_project_directory_is_swapped_for_a_symlink_operations_still_reach_the_pinned_directory(
) {
    let (_tmp, base) = base();
    let (dir, pin) = project(&base, vec![]);
    let decoy = base.join("decoy");
    fs::create_dir(&decoy).unwrap();
    fs::write(decoy.join("authorized_keys"), b"decoy").unwrap();
    fs::write(dir.join("authorized_keys"), b"project").unwrap();

    fs::rename(&dir, base.join("aside")).unwrap();
    symlink(&decoy, &dir).unwrap();

    assert_eq!(
        beneath::read(&pin, p("authorized_keys"), 64).unwrap(),
        b"project"
    );
    beneath::write(&pin, p("authorized_keys"), b"written").unwrap();
    assert_eq!(fs::read(decoy.join("authorized_keys")).unwrap(), b"decoy");
    assert_eq!(
        fs::read(base.join("aside/authorized_keys")).unwrap(),
        b"written"
    );
}

#[test]
fn list_and_stat_report_kinds_without_following_links() {
    let (_tmp, base) = base();
    let (dir, pin) = project(&base, vec![]);
    fs::create_dir(dir.join("b_dir")).unwrap();
    fs::write(dir.join("a_file"), b"12345").unwrap();
    symlink("/etc", dir.join("c_link")).unwrap();
    let entries = beneath::list(&pin, p(".")).unwrap();
    let kinds: Vec<_> = entries
        .iter()
        .map(|e| (e.name.to_str().unwrap(), e.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            ("a_file", Kind::File),
            ("b_dir", Kind::Directory),
            ("c_link", Kind::Symlink)
        ]
    );
    assert_eq!(beneath::stat(&pin, p("")).unwrap().kind, Kind::Directory);
    assert!(matches!(
        beneath::read(&pin, p("b_dir"), 64),
        Err(Error::NotRegularFile)
    ));
    assert!(matches!(
        beneath::read(&pin, p("missing"), 64),
        Err(Error::NotFound)
    ));
    assert!(matches!(
        beneath::read(&pin, p("a_file"), 4),
        Err(Error::FileTooLarge { .. })
    ));
    assert_eq!(
        violation(beneath::list(&pin, p("a_file"))),
        BeneathViolation::NotDirectory
    );
}
