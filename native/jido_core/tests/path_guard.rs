//! Contract of `path_guard`: every rule refuses with its own violation, a pin
//! notices any change to the path, and a racing symlink swap never gets a pin
//! onto the link's target.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use jido_core::path_guard::{self, PathPolicy, PinnedDir};
use jido_core::{Error, PathViolation, Result};
use std::ffi::OsStr;
use std::fmt::Debug;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use tempfile::TempDir;

// ---- helpers -------------------------------------------------------------

/// A temporary base directory, canonical so the tests never depend on
/// whether `$TMPDIR` goes through a symlink.
fn base() -> (TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let base = path_guard::canonicalize(tmp.path()).unwrap();
    (tmp, base)
}

/// Creates a directory with mode 0755 whatever the umask.
fn mkdir(path: &Path) -> PathBuf {
    fs::create_dir(path).unwrap();
    chmod(path, 0o755);
    path.to_path_buf()
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn violation<T: Debug>(result: Result<T>) -> PathViolation {
    match result {
        Err(Error::Path(v)) => v,
        other => panic!("expected a path violation, got {other:?}"),
    }
}

fn check(path: &Path) -> Result<()> {
    path_guard::validate(path, &PathPolicy::default())
}

fn allowed(roots: &[&Path]) -> PathPolicy {
    PathPolicy {
        allowed_roots: Some(roots.iter().map(|r| r.to_path_buf()).collect()),
        ..PathPolicy::default()
    }
}

fn denied(roots: &[&Path]) -> PathPolicy {
    PathPolicy {
        denied_roots: roots.iter().map(|r| r.to_path_buf()).collect(),
        ..PathPolicy::default()
    }
}

fn identity_of(path: &Path) -> (u64, u64) {
    let md = fs::symlink_metadata(path).unwrap();
    (md.dev(), md.ino())
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

// ---- lexical rules -------------------------------------------------------

#[test]
fn relative_and_empty_paths_are_refused_as_not_absolute() {
    for p in ["", "a", "a/b", "./a", "../a", "~/project"] {
        assert_eq!(
            violation(check(Path::new(p))),
            PathViolation::NotAbsolute,
            "{p:?}"
        );
    }
}

#[test]
fn a_nul_byte_anywhere_is_refused() {
    for raw in [&b"/tmp\0"[..], b"/tmp/\0/x", b"/\0"] {
        let p = Path::new(OsStr::from_bytes(raw));
        assert_eq!(violation(check(p)), PathViolation::ContainsNul, "{p:?}");
    }
}

#[test]
fn a_dot_component_is_refused_as_traversal() {
    let (_tmp, base) = base();
    mkdir(&base.join("p"));
    for p in [
        format!("{}/./p", base.display()),
        format!("{}/p/.", base.display()),
        "/.".into(),
    ] {
        assert_eq!(
            violation(check(Path::new(&p))),
            PathViolation::Traversal,
            "{p}"
        );
    }
}

#[test]
fn a_dotdot_component_is_refused_as_traversal_even_when_it_resolves_inside() {
    let (_tmp, base) = base();
    mkdir(&base.join("p"));
    for p in [
        format!("{}/p/..", base.display()),
        format!("{}/p/../p", base.display()),
        "/../etc".into(),
        "/..".into(),
    ] {
        assert_eq!(
            violation(check(Path::new(&p))),
            PathViolation::Traversal,
            "{p}"
        );
    }
}

#[test]
fn names_merely_containing_dots_are_ordinary_components() {
    let (_tmp, base) = base();
    for name in ["...", ".hidden", "a..b", "..x"] {
        let dir = mkdir(&base.join(name));
        check(&dir).unwrap();
    }
}

#[test]
fn empty_components_and_a_trailing_slash_are_tolerated() {
    let (_tmp, base) = base();
    let dir = mkdir(&base.join("p"));
    let odd = format!("/{}//p/", base.display());
    check(Path::new(&odd)).unwrap();
    check(Path::new(&format!("{}/", dir.display()))).unwrap();
}

#[test]
fn the_filesystem_root_passes_without_a_policy_so_allowed_roots_must_confine_it() {
    check(Path::new("/")).unwrap();
    let (_tmp, base) = base();
    let policy = allowed(&[&base]);
    assert_eq!(
        violation(path_guard::validate(Path::new("/"), &policy)),
        PathViolation::OutsideAllowedRoots
    );
}

// ---- the walk --------------------------------------------------------------

#[test]
fn a_missing_final_directory_is_not_found() {
    let (_tmp, base) = base();
    assert_eq!(
        violation(check(&base.join("nope"))),
        PathViolation::NotFound
    );
}

#[test]
fn a_missing_middle_directory_is_not_found() {
    let (_tmp, base) = base();
    assert_eq!(
        violation(check(&base.join("nope/p"))),
        PathViolation::NotFound
    );
}

#[test]
fn a_regular_file_is_not_a_directory() {
    let (_tmp, base) = base();
    let file = base.join("f");
    fs::write(&file, b"x").unwrap();
    assert_eq!(violation(check(&file)), PathViolation::NotDirectory);
}

#[test]
fn a_regular_file_as_a_middle_component_is_not_a_directory() {
    let (_tmp, base) = base();
    fs::write(base.join("f"), b"x").unwrap();
    assert_eq!(
        violation(check(&base.join("f/p"))),
        PathViolation::NotDirectory
    );
}

#[test]
fn a_symlink_as_the_final_component_is_refused_even_to_a_valid_directory() {
    let (_tmp, base) = base();
    let real = mkdir(&base.join("real"));
    check(&real).unwrap();
    symlink(&real, base.join("link")).unwrap();
    assert_eq!(violation(check(&base.join("link"))), PathViolation::Symlink);
}

#[test]
fn a_symlink_as_a_middle_component_is_refused() {
    let (_tmp, base) = base();
    let real = mkdir(&base.join("real"));
    mkdir(&real.join("p"));
    symlink(&real, base.join("link")).unwrap();
    assert_eq!(
        violation(check(&base.join("link/p"))),
        PathViolation::Symlink
    );
}

#[test]
fn a_relative_symlink_to_the_parent_is_refused() {
    let (_tmp, base) = base();
    mkdir(&base.join("p"));
    symlink("..", base.join("p/up")).unwrap();
    assert_eq!(violation(check(&base.join("p/up"))), PathViolation::Symlink);
}

#[test]
fn a_dangling_symlink_is_refused_as_a_symlink() {
    let (_tmp, base) = base();
    symlink(base.join("nowhere"), base.join("link")).unwrap();
    assert_eq!(violation(check(&base.join("link"))), PathViolation::Symlink);
}

#[test]
fn a_symlink_to_a_file_is_refused_as_a_symlink() {
    let (_tmp, base) = base();
    fs::write(base.join("f"), b"x").unwrap();
    symlink(base.join("f"), base.join("link")).unwrap();
    assert_eq!(violation(check(&base.join("link"))), PathViolation::Symlink);
}

// ---- owner and mode --------------------------------------------------------

#[test]
fn a_group_writable_directory_is_insecure() {
    let (_tmp, base) = base();
    let dir = mkdir(&base.join("p"));
    chmod(&dir, 0o775);
    assert_eq!(violation(check(&dir)), PathViolation::InsecurePermissions);
}

#[test]
fn an_other_writable_directory_is_insecure() {
    let (_tmp, base) = base();
    let dir = mkdir(&base.join("p"));
    for mode in [0o757, 0o777, 0o722] {
        chmod(&dir, mode);
        assert_eq!(
            violation(check(&dir)),
            PathViolation::InsecurePermissions,
            "{mode:o}"
        );
    }
}

#[test]
fn a_sticky_world_writable_directory_is_accepted() {
    let (_tmp, base) = base();
    let dir = mkdir(&base.join("p"));
    chmod(&dir, 0o1777);
    check(&dir).unwrap();
}

#[test]
fn private_and_read_only_directories_are_accepted() {
    let (_tmp, base) = base();
    let dir = mkdir(&base.join("p"));
    for mode in [0o700, 0o755, 0o500, 0o555] {
        chmod(&dir, mode);
        check(&dir).unwrap();
    }
}

#[test]
fn a_directory_owned_by_another_user_is_not_owned() {
    if !is_root() {
        println!("skipped: chown to another user needs root");
        return;
    }
    let (_tmp, base) = base();
    let dir = mkdir(&base.join("p"));
    std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
    assert_eq!(violation(check(&dir)), PathViolation::NotOwned);
    // Ownership is judged before permissions.
    chmod(&dir, 0o777);
    assert_eq!(violation(check(&dir)), PathViolation::NotOwned);
}

#[test]
fn an_intermediate_directory_owned_by_another_user_is_not_judged() {
    if !is_root() {
        println!("skipped: chown to another user needs root");
        return;
    }
    let (_tmp, base) = base();
    let mid = mkdir(&base.join("mid"));
    let dir = mkdir(&mid.join("p"));
    std::os::unix::fs::chown(&mid, Some(65534), Some(65534)).unwrap();
    check(&dir).unwrap();
}

// ---- policy ----------------------------------------------------------------

#[test]
fn a_directory_inside_or_equal_to_an_allowed_root_is_accepted() {
    let (_tmp, base) = base();
    let root = mkdir(&base.join("root"));
    let deep = mkdir(&mkdir(&root.join("a")).join("b"));
    let policy = allowed(&[&root]);
    path_guard::validate(&root, &policy).unwrap();
    path_guard::validate(&deep, &policy).unwrap();
}

#[test]
fn a_directory_outside_every_allowed_root_is_refused() {
    let (_tmp, base) = base();
    let root = mkdir(&base.join("root"));
    let other = mkdir(&base.join("other"));
    let policy = allowed(&[&root]);
    assert_eq!(
        violation(path_guard::validate(&other, &policy)),
        PathViolation::OutsideAllowedRoots
    );
    assert_eq!(
        violation(path_guard::validate(&base, &policy)),
        PathViolation::OutsideAllowedRoots,
        "the parent of a root is not inside it"
    );
}

#[test]
fn allowed_roots_compare_components_not_string_prefixes() {
    let (_tmp, base) = base();
    let b = mkdir(&base.join("b"));
    let bc = mkdir(&base.join("bc"));
    let policy = allowed(&[&b]);
    path_guard::validate(&b, &policy).unwrap();
    assert_eq!(
        violation(path_guard::validate(&bc, &policy)),
        PathViolation::OutsideAllowedRoots
    );
}

#[test]
fn a_trailing_slash_or_double_slash_on_a_root_is_ignored() {
    let (_tmp, base) = base();
    let root = mkdir(&base.join("root"));
    let inner = mkdir(&root.join("x"));
    let slashed = PathBuf::from(format!("/{}//", root.display()));
    path_guard::validate(&inner, &allowed(&[&slashed])).unwrap();
    assert_eq!(
        violation(path_guard::validate(&inner, &denied(&[&slashed]))),
        PathViolation::Denied
    );
}

#[test]
fn any_one_of_several_allowed_roots_suffices_and_an_empty_list_allows_nothing() {
    let (_tmp, base) = base();
    let r1 = mkdir(&base.join("r1"));
    let r2 = mkdir(&base.join("r2"));
    let inner = mkdir(&r2.join("x"));
    path_guard::validate(&inner, &allowed(&[&r1, &r2])).unwrap();
    assert_eq!(
        violation(path_guard::validate(&inner, &allowed(&[]))),
        PathViolation::OutsideAllowedRoots
    );
}

#[test]
fn the_policy_is_judged_before_the_filesystem_is_touched() {
    let (_tmp, base) = base();
    let root = mkdir(&base.join("root"));
    let policy = allowed(&[&root]);
    assert_eq!(
        violation(path_guard::validate(&base.join("missing"), &policy)),
        PathViolation::OutsideAllowedRoots
    );
}

#[test]
fn a_directory_equal_to_a_denied_root_is_denied() {
    let (_tmp, base) = base();
    let home = mkdir(&base.join("home"));
    assert_eq!(
        violation(path_guard::validate(&home, &denied(&[&home]))),
        PathViolation::Denied
    );
}

#[test]
fn a_directory_nested_in_a_denied_root_is_denied() {
    let (_tmp, base) = base();
    let home = mkdir(&base.join("home"));
    let nested = mkdir(&mkdir(&home.join("sessions")).join("x"));
    assert_eq!(
        violation(path_guard::validate(&nested, &denied(&[&home]))),
        PathViolation::Denied
    );
}

#[test]
fn a_sibling_sharing_a_string_prefix_with_a_denied_root_is_not_denied() {
    let (_tmp, base) = base();
    let home = mkdir(&base.join("home"));
    let sibling = mkdir(&base.join("home2"));
    path_guard::validate(&sibling, &denied(&[&home])).unwrap();
    path_guard::validate(&base, &denied(&[&home])).unwrap();
}

#[test]
fn a_denied_root_inside_an_allowed_root_still_denies() {
    let (_tmp, base) = base();
    let home = mkdir(&base.join("home"));
    let policy = PathPolicy {
        allowed_roots: Some(vec![base.clone()]),
        denied_roots: vec![home.clone()],
    };
    path_guard::validate(&base, &policy).unwrap();
    assert_eq!(
        violation(path_guard::validate(&home, &policy)),
        PathViolation::Denied
    );
}

#[test]
fn a_malformed_policy_root_refuses_every_path_with_an_io_error() {
    let (_tmp, base) = base();
    let dir = mkdir(&base.join("p"));
    for root in ["relative", "/a/../b", ""] {
        for policy in [denied(&[Path::new(root)]), allowed(&[Path::new(root)])] {
            match path_guard::validate(&dir, &policy) {
                Err(Error::Io {
                    op: "path_policy", ..
                }) => {}
                other => panic!("root {root:?}: expected a policy error, got {other:?}"),
            }
        }
    }
}

// ---- canonicalize ----------------------------------------------------------

#[test]
fn canonicalize_resolves_symlinks_dots_and_slashes_into_a_path_that_validates() {
    let (_tmp, base) = base();
    let real = mkdir(&base.join("real"));
    let inner = mkdir(&real.join("p"));
    symlink(&real, base.join("link")).unwrap();
    let messy = PathBuf::from(format!("{}//link/./p/../p/", base.display()));
    assert!(check(&messy).is_err());
    let canonical = path_guard::canonicalize(&messy).unwrap();
    assert_eq!(canonical, inner);
    check(&canonical).unwrap();
}

#[test]
fn canonicalize_maps_failures_to_path_violations() {
    let (_tmp, base) = base();
    fs::write(base.join("f"), b"x").unwrap();
    symlink("loop", base.join("loop")).unwrap();
    let cases: [(PathBuf, PathViolation); 5] = [
        (PathBuf::from("relative"), PathViolation::NotAbsolute),
        (
            PathBuf::from(OsStr::from_bytes(b"/tmp\0x")),
            PathViolation::ContainsNul,
        ),
        (base.join("missing"), PathViolation::NotFound),
        (base.join("f/x"), PathViolation::NotDirectory),
        (base.join("loop"), PathViolation::Symlink),
    ];
    for (path, expected) in cases {
        assert_eq!(
            violation(path_guard::canonicalize(&path)),
            expected,
            "{path:?}"
        );
    }
}

// ---- pinning ---------------------------------------------------------------

#[test]
fn an_unmodified_pin_revalidates_every_time() {
    let (_tmp, base) = base();
    let dir = mkdir(&mkdir(&base.join("mid")).join("leaf"));
    let pinned = path_guard::pin(&dir, &PathPolicy::default()).unwrap();
    assert_eq!(pinned.path(), dir);
    for _ in 0..100 {
        pinned.revalidate().unwrap();
    }
}

#[test]
fn the_pin_identity_is_the_directory_device_and_inode() {
    let (_tmp, base) = base();
    let dir = mkdir(&base.join("p"));
    let pinned = path_guard::pin(&dir, &PathPolicy::default()).unwrap();
    assert_eq!(pinned.identity(), identity_of(&dir));
}

#[test]
fn files_can_be_opened_relative_to_the_pinned_descriptor_after_a_rename() {
    use rustix::fs::{openat, Mode, OFlags};
    use std::os::fd::AsFd;
    let (_tmp, base) = base();
    let dir = mkdir(&base.join("p"));
    fs::write(dir.join("file"), b"inside").unwrap();
    let pinned = path_guard::pin(&dir, &PathPolicy::default()).unwrap();
    fs::rename(&dir, base.join("moved")).unwrap();
    let fd = openat(
        pinned.as_fd(),
        "file",
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .unwrap();
    let mut text = String::new();
    fs::File::from(fd).read_to_string(&mut text).unwrap();
    assert_eq!(text, "inside");
    assert_eq!(violation(pinned.revalidate()), PathViolation::Changed);
}

#[test]
fn debug_output_shows_path_and_identity_but_no_descriptor() {
    let (_tmp, base) = base();
    let dir = mkdir(&base.join("p"));
    let pinned = path_guard::pin(&dir, &PathPolicy::default()).unwrap();
    let text = format!("{pinned:?}");
    assert!(text.starts_with("PinnedDir {"), "{text}");
    assert!(text.contains(&*dir.to_string_lossy()), "{text}");
    assert!(text.contains("mode: 40755"), "{text}");
    assert!(!text.contains("OwnedFd"), "{text}");
}

#[test]
fn a_pinned_dir_can_cross_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<PinnedDir>();
}

/// Which directory on `base/mid/leaf` the attack targets.
#[derive(Clone, Copy, Debug)]
enum Target {
    Final,
    Middle,
}

/// Pins `base/mid/leaf`, runs `attack` on the targeted directory's path, and
/// returns the revalidation result.
fn revalidate_after(target: Target, attack: impl FnOnce(&Path, &Path)) -> Result<()> {
    let (_tmp, base) = base();
    let mid = mkdir(&base.join("mid"));
    let leaf = mkdir(&mid.join("leaf"));
    let pinned = path_guard::pin(&leaf, &PathPolicy::default()).unwrap();
    pinned.revalidate().unwrap();
    let victim = match target {
        Target::Final => leaf,
        Target::Middle => mid,
    };
    let moved = victim.with_file_name("moved");
    attack(&victim, &moved);
    pinned.revalidate()
}

fn assert_changed(target: Target, attack: impl FnOnce(&Path, &Path)) {
    assert_eq!(
        violation(revalidate_after(target, attack)),
        PathViolation::Changed,
        "{target:?}"
    );
}

fn rename_away(victim: &Path, moved: &Path) {
    fs::rename(victim, moved).unwrap();
}

fn replace_with_new_directory(victim: &Path, moved: &Path) {
    fs::rename(victim, moved).unwrap();
    mkdir(victim);
    // For the middle directory, make the full path exist again.
    if moved.join("leaf").exists() {
        mkdir(&victim.join("leaf"));
    }
}

fn replace_with_symlink_to_original(victim: &Path, moved: &Path) {
    fs::rename(victim, moved).unwrap();
    symlink(moved, victim).unwrap();
}

fn make_world_writable(victim: &Path, _moved: &Path) {
    chmod(victim, 0o777);
}

#[test]
fn renaming_the_final_directory_away_is_changed() {
    assert_changed(Target::Final, rename_away);
}

#[test]
fn renaming_a_middle_directory_away_is_changed() {
    assert_changed(Target::Middle, rename_away);
}

#[test]
fn replacing_the_final_directory_with_a_new_one_is_changed() {
    assert_changed(Target::Final, replace_with_new_directory);
}

#[test]
fn replacing_a_middle_directory_with_a_new_one_is_changed() {
    assert_changed(Target::Middle, replace_with_new_directory);
}

#[test]
fn replacing_a_middle_directory_while_moving_the_original_leaf_into_it_is_changed() {
    // The final directory is the very inode that was pinned; only the
    // per-component identities reveal that the path to it was rebuilt.
    assert_changed(Target::Middle, |victim, moved| {
        fs::rename(victim, moved).unwrap();
        mkdir(victim);
        fs::rename(moved.join("leaf"), victim.join("leaf")).unwrap();
    });
}

#[test]
fn replacing_the_final_directory_with_a_symlink_to_the_original_is_changed() {
    assert_changed(Target::Final, replace_with_symlink_to_original);
}

#[test]
fn replacing_a_middle_directory_with_a_symlink_to_the_original_is_changed() {
    assert_changed(Target::Middle, replace_with_symlink_to_original);
}

#[test]
fn making_the_pinned_directory_world_writable_is_changed() {
    assert_changed(Target::Final, make_world_writable);
}

#[test]
fn making_a_middle_directory_world_writable_is_changed() {
    assert_changed(Target::Middle, make_world_writable);
}

#[test]
fn tightening_the_pinned_directory_mode_is_changed_too() {
    assert_changed(Target::Final, |victim, _| chmod(victim, 0o700));
}

#[test]
fn removing_the_pinned_directory_is_changed() {
    assert_changed(Target::Final, |victim, _| fs::remove_dir(victim).unwrap());
}

#[test]
fn handing_the_pinned_directory_to_another_user_is_changed() {
    if !is_root() {
        println!("skipped: chown to another user needs root");
        return;
    }
    assert_changed(Target::Final, |victim, _| {
        std::os::unix::fs::chown(victim, Some(65534), None).unwrap();
    });
}

#[test]
fn renaming_away_and_back_is_not_a_change() {
    let result = revalidate_after(Target::Middle, |victim, moved| {
        fs::rename(victim, moved).unwrap();
        fs::rename(moved, victim).unwrap();
    });
    result.unwrap();
}

// ---- the race --------------------------------------------------------------

/// Swaps `base/proj` (a real directory) and `base/swap` (a symlink to
/// `base/decoy`) in a tight loop while the main thread pins and revalidates
/// `base/proj` + `suffix`. A guard that ever followed the link would pin a
/// decoy inode; every successful pin must be of the original.
fn race_symlink_swap(suffix: &str) {
    use rustix::fs::{renameat_with, RenameFlags, CWD};

    let (_tmp, base) = base();
    let proj = mkdir(&base.join("proj"));
    let decoy = mkdir(&base.join("decoy"));
    if !suffix.is_empty() {
        mkdir(&proj.join(suffix));
        mkdir(&decoy.join(suffix));
    }
    symlink(&decoy, base.join("swap")).unwrap();
    let target = if suffix.is_empty() {
        proj.clone()
    } else {
        proj.join(suffix)
    };
    let original = identity_of(&target);

    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicU64::new(0));
    let swapper = {
        let (stop, swaps, base) = (Arc::clone(&stop), Arc::clone(&swaps), base.clone());
        std::thread::spawn(move || {
            let (proj, swap, stash) = (base.join("proj"), base.join("swap"), base.join("stash"));
            // Atomic exchange keeps `proj` always present; where the kernel
            // or filesystem lacks it, fall back to plain renames.
            let exchange = || renameat_with(CWD, &proj, CWD, &swap, RenameFlags::EXCHANGE);
            let atomic = exchange().and_then(|()| exchange()).is_ok();
            while !stop.load(Ordering::Relaxed) {
                // Each iteration is a full cycle, so the tree ends as it began.
                if atomic {
                    exchange().unwrap();
                    exchange().unwrap();
                } else {
                    fs::rename(&proj, &stash).unwrap();
                    fs::rename(&swap, &proj).unwrap();
                    fs::rename(&proj, &swap).unwrap();
                    fs::rename(&stash, &proj).unwrap();
                }
                swaps.fetch_add(1, Ordering::Relaxed);
            }
            atomic
        })
    };
    while swaps.load(Ordering::Relaxed) == 0 {
        std::thread::yield_now();
    }

    let (mut pinned, mut still, mut changed) = (0u32, 0u32, 0u32);
    let (mut symlink_refusals, mut not_found, mut mislabelled) = (0u32, 0u32, 0u32);
    for _ in 0..500 {
        match path_guard::pin(&target, &PathPolicy::default()) {
            Ok(pin) => {
                assert_eq!(
                    pin.identity(),
                    original,
                    "a pin landed on the symlink's target"
                );
                pinned += 1;
                match pin.revalidate() {
                    Ok(()) => still += 1,
                    Err(Error::Path(PathViolation::Changed)) => changed += 1,
                    Err(other) => panic!("revalidate: {other:?}"),
                }
            }
            Err(Error::Path(PathViolation::Symlink)) => symlink_refusals += 1,
            Err(Error::Path(PathViolation::NotFound)) => not_found += 1,
            // The link was swapped back between the failed open and the
            // classifying stat: still a refusal, only its label is stale.
            Err(Error::Path(PathViolation::NotDirectory)) => mislabelled += 1,
            Err(other) => panic!("pin: {other:?}"),
        }
    }
    stop.store(true, Ordering::Relaxed);
    let atomic = swapper.join().unwrap();
    println!(
        "race on {:?} ({} swap cycles, exchange={atomic}): pinned {pinned} \
         (revalidated {still}, changed {changed}), refused: symlink {symlink_refusals}, \
         not found {not_found}, not directory {mislabelled}",
        target.strip_prefix(&base).unwrap(),
        swaps.load(Ordering::Relaxed),
    );
    assert_eq!(pinned + symlink_refusals + not_found + mislabelled, 500);
    assert_eq!(still + changed, pinned);
    // The tree is back in its original shape.
    assert_eq!(identity_of(&target), original);
    path_guard::pin(&target, &PathPolicy::default())
        .unwrap()
        .revalidate()
        .unwrap();
}

#[test]
fn racing_symlink_swaps_of_the_final_component_never_yield_a_pin_on_the_link_target() {
    race_symlink_swap("");
}

#[test]
fn racing_symlink_swaps_of_a_middle_component_never_yield_a_pin_on_the_link_target() {
    race_symlink_swap("leaf");
}
