//! Files and directories the daemon creates are private to its user: the database holds pod
//! tokens and client keys, so nothing it writes is readable by group or others by default.

use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

/// Makes every file the process creates from now on 0600 and every directory 0700, whatever
/// the umask it was started with (SQLite's -wal and -shm files included).
pub fn restrict_umask() {
    // SAFETY: umask only changes this process's file-creation mask and cannot fail.
    unsafe {
        libc::umask(0o077);
    }
}

/// Creates `dir` and its missing parents with mode 0700. Directories that already exist keep
/// their mode: an administrator may have made them group-accessible on purpose.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// The mode bits of `path`.
pub fn mode_of(path: &Path) -> io::Result<u32> {
    Ok(std::fs::metadata(path)?.permissions().mode() & 0o7777)
}

/// The id of group `name`, if it exists.
pub fn group_id(name: &str) -> Option<u32> {
    let cname = std::ffi::CString::new(name).ok()?;
    let mut buf = vec![0u8; 4096];
    // SAFETY: an all-zero group is a valid value for getgrnam_r to overwrite.
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::group = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; `buf` outlives the use of `grp`.
    let rc = unsafe {
        libc::getgrnam_r(
            cname.as_ptr(),
            &mut grp,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        )
    };
    (rc == 0 && !result.is_null()).then_some(grp.gr_gid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_dirs_are_0700() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a").join("b");
        create_private_dir(&dir).unwrap();
        assert_eq!(mode_of(&dir).unwrap(), 0o700);
        assert_eq!(mode_of(&root.path().join("a")).unwrap(), 0o700);
    }

    #[test]
    fn groups_by_name() {
        assert_eq!(group_id("root"), Some(0));
        assert_eq!(group_id("no-such-group-pw"), None);
    }
}
