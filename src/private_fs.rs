//! The data directory holds emails, metadata and key hashes: it is created
//! 0700 and every file in it 0600, whatever the umask. Files from older
//! versions (0644) are tightened when opened.

use std::io::Write;
use std::path::Path;

#[cfg(unix)]
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};

/// Creates `dir` (and missing parents) with mode 0700. A directory that
/// already exists keeps its mode (an operator may share it on purpose); one
/// that others can read is logged.
pub fn create_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        #[cfg(unix)]
        if std::fs::metadata(dir)?.permissions().mode() & 0o077 != 0 {
            tracing::warn!(dir = %dir.display(), "the data directory is readable by other users; chmod 700 it");
        }
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    builder.mode(0o700);
    builder.create(dir)
}

/// Makes sure `file` exists with mode 0600 before another library opens it
/// (redb creates files with the process umask), and tightens an existing one.
pub fn prepare_file(file: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    options.mode(0o600);
    let f = options.open(file)?;
    #[cfg(unix)]
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(())
}

/// Writes `text` to `file` atomically (a temporary file, fsync'ed, renamed
/// over it), mode 0600 from the first byte.
pub fn write_atomic(file: &Path, text: &str) -> std::io::Result<()> {
    let tmp = file.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut f = options.open(&tmp)?;
    #[cfg(unix)]
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, file)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn directories_are_created_0700_and_files_0600_whatever_the_umask() {
        // The most permissive umask: only explicit modes keep files private.
        let old = unsafe { libc::umask(0) };
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        create_dir(&dir).unwrap();
        prepare_file(&dir.join("db")).unwrap();
        write_atomic(&dir.join("offset"), "5").unwrap();
        unsafe { libc::umask(old) };
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("db")), 0o600);
        assert_eq!(mode(&dir.join("offset")), 0o600);
        assert_eq!(std::fs::read_to_string(dir.join("offset")).unwrap(), "5");
    }

    #[test]
    fn a_file_from_an_older_version_is_tightened() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("db");
        std::fs::write(&file, b"x").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        prepare_file(&file).unwrap();
        assert_eq!(mode(&file), 0o600);
        assert_eq!(std::fs::read(&file).unwrap(), b"x", "contents are kept");
    }
}
