//! `nhc-hook` must exit 0 whatever happens, or Nix fails the build.

use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Command, Stdio};

/// stdout is a pipe nobody reads: `println!` panics (EPIPE); the hook still exits 0.
#[test]
fn a_panic_exits_0() {
    let mut fds = [0; 2];
    // SAFETY: pipe() fills two new descriptors, each then owned exactly once.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    let out = Command::new(env!("CARGO_BIN_EXE_nhc-hook"))
        .arg("--version")
        .stdout(Stdio::from(write))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nhc-hook: error: INTERNAL ERROR"), "{err}");
    assert!(!err.contains('\n') || err.lines().count() == 1, "{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
}

#[test]
fn bad_arguments_and_a_missing_drv_path_exit_0() {
    for args in [&["a", "b"][..], &[]] {
        let out = Command::new(env!("CARGO_BIN_EXE_nhc-hook"))
            .args(args)
            .env_remove("DRV_PATH")
            .env("HASH_COLLECTION_CONFIG", "/dev/null")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        assert!(String::from_utf8_lossy(&out.stderr).contains("nhc-hook: error:"));
    }
}
