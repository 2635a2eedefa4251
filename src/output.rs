//! Putting rendered text on disk: stage it next to the destination, swap it
//! in atomically, and undo the swap when the caller's check says no.
//!
//! This module owns the bytes on disk. The destination holds its old or its
//! new contents in full at every instant, a crash included: the new contents
//! are written and fsynced under a temporary name, renamed over the
//! destination, and the directory is fsynced. The one exception is a
//! destination that cannot be renamed over (a single file bind-mounted into a
//! container), which is rewritten in place because there is no other way.
//! It does not render, decide when to write, or run the check and reload
//! commands.
//!
//! A destination that is a symbolic link stays one: what is written is the
//! file it points to (followed link by link, a relative link read against
//! the link's directory), staged in that file's directory, so a link into a
//! shared or mounted config directory keeps working. consul-template
//! instead renames over the link, replacing it with a plain file.
//!
//! Every file it creates besides the destination and `<dest>.bak` is named
//! `.<file name>.consul-render.<random>` and is removed again on every path,
//! so anything a crash leaves behind is easy to recognise.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File, Metadata, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tempfile::{NamedTempFile, TempPath};

/// Mode of a destination that did not exist before, unless told otherwise.
const DEFAULT_MODE: u32 = 0o644;

/// Mode of directories created for a destination.
const DIR_MODE: u32 = 0o755;

/// How to write a destination.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// Mode for a destination that does not exist yet (0o644 when `None`). An
    /// existing destination keeps its own mode and owner.
    pub perms: Option<u32>,
    /// Keep `<dest>.bak` with the contents being replaced.
    pub backup: bool,
}

/// How the new contents got into the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Swap {
    /// Atomically, by renaming the staged file over it.
    Renamed,
    /// Rewritten in place, because renaming failed with EBUSY or EXDEV: the
    /// destination is a bind-mounted single file.
    InPlace,
}

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// A missing parent directory of the destination could not be created.
    #[error("could not create directory {path}: {source}")]
    CreateDir { path: PathBuf, source: io::Error },

    /// The new contents could not be written next to the destination; the
    /// destination is untouched.
    #[error("could not stage {path}: {source}")]
    Stage { path: PathBuf, source: io::Error },

    /// The destination (or its `.bak`) could not be replaced; it still holds
    /// its old contents.
    #[error("could not replace {path}: {source}")]
    Swap { path: PathBuf, source: io::Error },

    /// The old contents could not be put back.
    #[error("could not restore {path}: {source}")]
    Rollback { path: PathBuf, source: io::Error },

    /// The destination exists but could not be read.
    #[error("could not read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
}

/// The destination's current contents, `None` if it does not exist.
pub fn read_current(dest: &Path) -> Result<Option<Vec<u8>>, OutputError> {
    match fs::read(dest) {
        Ok(contents) => Ok(Some(contents)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(OutputError::Read {
            path: dest.to_owned(),
            source,
        }),
    }
}

/// New contents for a destination, complete and fsynced in a temporary file
/// next to it. Dropping it without committing removes the file.
#[derive(Debug)]
#[must_use = "dropping a Staged discards the staged file"]
pub struct Staged {
    dest: PathBuf,
    file: NamedTempFile,
    backup: bool,
}

impl Staged {
    /// Creates missing parent directories (0755), writes `contents` to a
    /// temporary file in the destination's directory, fsyncs it, and gives it
    /// the mode and (when permitted) owner and group of the existing
    /// destination, or `options.perms` (default 0644) for a new one.
    pub fn stage(
        dest: &Path,
        contents: &[u8],
        options: &WriteOptions,
    ) -> Result<Staged, OutputError> {
        let stage_error = |source| OutputError::Stage {
            path: dest.to_owned(),
            source,
        };
        let dest = &write_target(dest).map_err(stage_error)?;
        let (dir, name) = split(dest).map_err(stage_error)?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir)
            .map_err(|source| OutputError::CreateDir {
                path: dir.to_owned(),
                source,
            })?;
        let existing = existing(dest).map_err(stage_error)?;
        if existing.as_ref().is_some_and(Metadata::is_dir) {
            return Err(stage_error(io::Error::from_raw_os_error(libc::EISDIR)));
        }

        let mut file = temp_in(dir, name).map_err(stage_error)?;
        // Through the `File`: tempfile's own `Write` also wraps errors with the path.
        file.as_file_mut()
            .write_all(contents)
            .map_err(stage_error)?;
        match &existing {
            Some(meta) => like(file.as_file(), meta),
            None => file.as_file().set_permissions(Permissions::from_mode(
                options.perms.unwrap_or(DEFAULT_MODE),
            )),
        }
        .map_err(stage_error)?;
        file.as_file().sync_all().map_err(stage_error)?;

        Ok(Staged {
            dest: dest.to_owned(),
            file,
            backup: options.backup,
        })
    }

    /// The staged file, for checks that read it before it goes live.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Replaces the destination: renames the staged file over it and fsyncs
    /// the directory. Before that it keeps a way back, a hard link to the old
    /// destination under a hidden name (a copy where linking fails), and with
    /// `backup` writes `<dest>.bak`. If the rename fails with EBUSY or EXDEV
    /// (a bind-mounted file), the destination is rewritten in place instead
    /// and [`Swap::InPlace`] says so.
    pub fn commit(self) -> Result<(Committed, Swap), OutputError> {
        let dest = self.dest.clone();
        let (previous, swap) = self.swap(true)?;
        Ok((Committed { dest, previous }, swap))
    }

    /// Replaces the destination for good: what a write without a check
    /// needs. Unlike [`Staged::commit`] it keeps no way back, which saves
    /// linking and unlinking the old file on every write.
    pub fn replace(self) -> Result<Swap, OutputError> {
        // A previous-contents file made for an in-place write goes away here.
        self.swap(false).map(|(_, swap)| swap)
    }

    fn swap(self, keep_way_back: bool) -> Result<(Option<Previous>, Swap), OutputError> {
        let Staged { dest, file, backup } = self;
        let swap_error = |source| OutputError::Swap {
            path: dest.clone(),
            source,
        };
        let (dir, name) = split(&dest).map_err(swap_error)?;
        let existing = existing(&dest).map_err(swap_error)?;
        let previous = match (&existing, keep_way_back) {
            (Some(meta), true) => Some(Previous::keep(&dest, dir, name, meta).map_err(swap_error)?),
            _ => None,
        };
        if backup && let Some(meta) = &existing {
            let mut bak_name = name.to_owned();
            bak_name.push(".bak");
            let bak = dest.with_file_name(&bak_name);
            let from = previous.as_ref().map_or(dest.as_path(), |p| &*p.path);
            write_copy(from, dir, &bak_name, &bak, meta)
                .map_err(|source| OutputError::Swap { path: bak, source })?;
        }

        // The staged file was fsynced and rename is atomic: whatever
        // happens next, the destination names the old file or the new one.
        // The directory is not fsynced: after a power loss that could bring
        // back the old file (which the next run rewrites), never a mix.
        let err = match file.persist(&dest) {
            Ok(_) => return Ok((previous, Swap::Renamed)),
            Err(err) => err,
        };
        // Only an existing file can be a mount point, so without a previous
        // file there is no in-place fallback to try.
        let Some(meta) = existing.filter(|_| crosses_mount(&err.error)) else {
            return Err(swap_error(err.error));
        };
        // An in-place write needs the old contents to restore from if it
        // fails. A link shares the inode about to be rewritten, so it would
        // change along with it: only a copy will do.
        let previous = match previous {
            Some(previous) if !previous.linked => previous,
            _ => Previous::copy(&dest, dir, name, &meta).map_err(swap_error)?,
        };
        if let Err(source) = overwrite(&dest, err.file.path()) {
            // The destination may be half-written now; put the old contents
            // back the same way.
            if let Err(restore) = overwrite(&dest, &previous.path) {
                tracing::error!(
                    dest = %dest.display(),
                    error = %restore,
                    "could not restore the previous contents after a failed in-place write",
                );
            }
            return Err(swap_error(source));
        }
        Ok((Some(previous), Swap::InPlace))
    }
}

/// A destination that holds its new contents and can still go back to the
/// old ones. Dropping it is the same as [`Committed::finish`].
#[derive(Debug)]
pub struct Committed {
    dest: PathBuf,
    /// `None` when the destination did not exist before the commit.
    previous: Option<Previous>,
}

impl Committed {
    /// Puts the previous contents back atomically (in place, if that is how
    /// they were replaced), or removes the destination if there was none
    /// before.
    pub fn rollback(self) -> Result<(), OutputError> {
        let Committed { dest, previous } = self;
        let rollback_error = |source| OutputError::Rollback {
            path: dest.clone(),
            source,
        };
        let (dir, _) = split(&dest).map_err(rollback_error)?;
        match previous {
            Some(previous) => match previous.path.persist(&dest) {
                Ok(()) => {}
                Err(err) if crosses_mount(&err.error) => {
                    overwrite(&dest, &err.path).map_err(rollback_error)?;
                }
                Err(err) => return Err(rollback_error(err.error)),
            },
            None => match fs::remove_file(&dest) {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => return Err(rollback_error(err)),
            },
        }
        sync_dir(dir);
        Ok(())
    }

    /// Keeps the new contents for good, removing the hidden copy of the old
    /// ones.
    pub fn finish(self) {}
}

/// The contents a destination had before a commit, under a hidden name until
/// the commit is finished or rolled back.
#[derive(Debug)]
struct Previous {
    path: TempPath,
    /// Whether `path` is a hard link to the old destination rather than a
    /// copy of it.
    linked: bool,
}

impl Previous {
    fn keep(dest: &Path, dir: &Path, name: &OsStr, meta: &Metadata) -> io::Result<Previous> {
        // A hard link costs nothing and keeps mode and owner exactly. It fails
        // across mounts (EXDEV for a bind-mounted destination) and on
        // filesystems without links; a copy works there.
        let prefix = temp_prefix(name);
        let linked = tempfile::Builder::new()
            .prefix(&prefix)
            .make_in(dir, |path| fs::hard_link(dest, path));
        match linked {
            Ok(link) => Ok(Previous {
                path: link.into_temp_path(),
                linked: true,
            }),
            Err(_) => Previous::copy(dest, dir, name, meta),
        }
    }

    fn copy(dest: &Path, dir: &Path, name: &OsStr, meta: &Metadata) -> io::Result<Previous> {
        let copy = copy_to_temp(dest, dir, name, meta)?;
        Ok(Previous {
            path: copy.into_temp_path(),
            linked: false,
        })
    }
}

/// The file writes to `dest` go to: `dest`, or the end of the chain of
/// symbolic links it starts (which may not exist yet).
fn write_target(dest: &Path) -> io::Result<PathBuf> {
    let mut path = dest.to_path_buf();
    // The kernel's own limit on links followed in one lookup.
    for _ in 0..40 {
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = fs::read_link(&path)?;
                path = match path.parent() {
                    Some(dir) => dir.join(target),
                    None => target,
                };
            }
            _ => return Ok(path),
        }
    }
    Err(io::Error::from_raw_os_error(libc::ELOOP))
}

/// Splits a destination into the directory it lives in and its file name.
fn split(dest: &Path) -> io::Result<(&Path, &OsStr)> {
    let name = dest.file_name().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "the path does not name a file")
    })?;
    let dir = match dest.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    Ok((dir, name))
}

/// The destination's metadata, `None` if it does not exist.
fn existing(dest: &Path) -> io::Result<Option<Metadata>> {
    match fs::metadata(dest) {
        Ok(meta) => Ok(Some(meta)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err),
    }
}

/// Removes staged and previous-contents files a killed run left next to
/// `dest` (a SIGKILL between staging and renaming leaves one). Assumes this
/// process is the destination's only writer. Returns how many it removed.
pub fn remove_leftovers(dest: &Path) -> usize {
    let Ok(dest) = write_target(dest) else {
        return 0;
    };
    let (Some(dir), Some(name)) = (dest.parent(), dest.file_name()) else {
        return 0;
    };
    let prefix = temp_prefix(name);
    let Ok(entries) = fs::read_dir(if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    }) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .as_encoded_bytes()
                .starts_with(prefix.as_encoded_bytes())
        })
        .filter(|e| fs::remove_file(e.path()).is_ok())
        .count()
}

fn temp_prefix(name: &OsStr) -> OsString {
    let mut prefix = OsString::from(".");
    prefix.push(name);
    prefix.push(".consul-render.");
    prefix
}

/// A new, empty temporary file named after `name`, created with mode 0600 so
/// that nobody reads it before it gets its final mode.
fn temp_in(dir: &Path, name: &OsStr) -> io::Result<NamedTempFile> {
    // Opened here rather than by tempfile's own constructor, which wraps its
    // errors with the temporary path: that hides the errno and clutters the
    // message with a name the user never chose.
    tempfile::Builder::new()
        .prefix(&temp_prefix(name))
        .make_in(dir, |path| {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
        })
}

/// Gives `file` the owner, group and mode in `meta`. Only root may give a
/// file away; when that is refused the group alone is tried, and failing
/// that the file stays ours with the right mode.
fn like(file: &File, meta: &Metadata) -> io::Result<()> {
    let refused = |err: &io::Error| err.raw_os_error() == Some(libc::EPERM);
    match std::os::unix::fs::fchown(file, Some(meta.uid()), Some(meta.gid())) {
        Err(err) if refused(&err) => {
            match std::os::unix::fs::fchown(file, None, Some(meta.gid())) {
                Err(err) if refused(&err) => {}
                other => other?,
            }
        }
        other => other?,
    }
    // After the chown, which clears set-user-ID and set-group-ID bits.
    file.set_permissions(Permissions::from_mode(meta.mode() & 0o7777))
}

/// A fsynced temporary copy of `from` with the owner and mode in `meta`.
fn copy_to_temp(
    from: &Path,
    dir: &Path,
    name: &OsStr,
    meta: &Metadata,
) -> io::Result<NamedTempFile> {
    let mut copy = temp_in(dir, name)?;
    io::copy(&mut File::open(from)?, copy.as_file_mut())?;
    like(copy.as_file(), meta)?;
    copy.as_file().sync_all()?;
    Ok(copy)
}

/// Atomically makes `to` (whose file name is `name`) a copy of `from`.
fn write_copy(from: &Path, dir: &Path, name: &OsStr, to: &Path, meta: &Metadata) -> io::Result<()> {
    copy_to_temp(from, dir, name, meta)?
        .persist(to)
        .map_err(|err| err.error)?;
    sync_dir(dir);
    Ok(())
}

/// Rewrites `dest` in place with the contents of `from`, for a destination
/// that cannot be renamed over. Not atomic: a crash in the middle leaves it
/// cut short, which is why this is only the fallback.
fn overwrite(dest: &Path, from: &Path) -> io::Result<()> {
    let mut source = File::open(from)?;
    let mut target = OpenOptions::new().write(true).truncate(true).open(dest)?;
    io::copy(&mut source, &mut target)?;
    target.sync_all()
}

/// Whether a rename failed because the destination is a mount point or on
/// another mount: EBUSY and EXDEV, which a bind-mounted file gives.
fn crosses_mount(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::EBUSY | libc::EXDEV))
}

/// Makes a rename in `dir` durable. By the time this runs the rename has
/// happened and is atomic either way; a failure only means a crash could
/// bring back the old name, which cannot be undone from here, so it is
/// logged rather than returned.
fn sync_dir(dir: &Path) {
    if let Err(err) = File::open(dir).and_then(|dir| dir.sync_all()) {
        tracing::warn!(dir = %dir.display(), error = %err, "could not fsync directory");
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;

    use super::*;

    /// The names in `dir`, sorted, so a test can say exactly what is there.
    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().mode() & 0o7777
    }

    fn write(path: &Path, contents: &str, mode: u32) {
        fs::write(path, contents).unwrap();
        fs::set_permissions(path, Permissions::from_mode(mode)).unwrap();
    }

    fn cstring(path: &Path) -> CString {
        CString::new(path.as_os_str().as_bytes()).unwrap()
    }

    /// A mount made by a test, detached when the test ends, however it ends.
    struct Mount(PathBuf);

    impl Mount {
        /// Mounts as `mount -t tmpfs`/`mount --bind` would, or `None` (with a
        /// note on stderr) where this machine does not let us mount.
        fn new(
            source: &Path,
            target: &Path,
            fstype: &str,
            flags: libc::c_ulong,
            data: &str,
        ) -> Option<Mount> {
            let fstype = CString::new(fstype).unwrap();
            let data = CString::new(data).unwrap();
            // SAFETY: every pointer is a NUL-terminated string that outlives
            // the call.
            let mounted = unsafe {
                libc::mount(
                    cstring(source).as_ptr(),
                    cstring(target).as_ptr(),
                    fstype.as_ptr(),
                    flags,
                    data.as_ptr().cast(),
                )
            };
            if mounted == 0 {
                return Some(Mount(target.to_owned()));
            }
            let err = io::Error::last_os_error();
            assert_eq!(err.raw_os_error(), Some(libc::EPERM), "mount failed: {err}");
            eprintln!("skipped: mounting is not permitted here ({err})");
            None
        }

        fn tmpfs(target: &Path, size: &str) -> Option<Mount> {
            Mount::new(
                Path::new("tmpfs"),
                target,
                "tmpfs",
                0,
                &format!("size={size}"),
            )
        }

        fn bind(source: &Path, target: &Path) -> Option<Mount> {
            Mount::new(source, target, "", libc::MS_BIND, "")
        }
    }

    impl Drop for Mount {
        fn drop(&mut self) {
            // SAFETY: the path is a NUL-terminated string that outlives the
            // call.
            unsafe { libc::umount2(cstring(&self.0).as_ptr(), libc::MNT_DETACH) };
        }
    }

    /// A file made immutable (`chattr +i`) for as long as the guard lives.
    struct Immutable(PathBuf);

    impl Immutable {
        /// `None` (with a note on stderr) where `chattr` or the filesystem
        /// does not support it.
        fn new(path: &Path) -> Option<Immutable> {
            let chattr = std::process::Command::new("chattr")
                .arg("+i")
                .arg(path)
                .status();
            if chattr.as_ref().is_ok_and(|status| status.success()) {
                return Some(Immutable(path.to_owned()));
            }
            eprintln!("skipped: cannot make a file immutable here ({chattr:?})");
            None
        }
    }

    impl Drop for Immutable {
        fn drop(&mut self) {
            let _ = std::process::Command::new("chattr")
                .arg("-i")
                .arg(&self.0)
                .status();
        }
    }

    #[test]
    fn a_new_file_gets_0644_or_the_mode_asked_for() {
        let cases = [(None, 0o644), (Some(0o600), 0o600), (Some(0o640), 0o640)];
        for (perms, want) in cases {
            let dir = tempfile::tempdir().unwrap();
            let dest = dir.path().join("default.conf");
            let options = WriteOptions {
                perms,
                backup: false,
            };

            let staged = Staged::stage(&dest, b"new", &options).unwrap();
            assert_eq!(mode(staged.path()), want, "{perms:?}");
            let (committed, swap) = staged.commit().unwrap();
            committed.finish();

            assert_eq!(swap, Swap::Renamed);
            assert_eq!(fs::read(&dest).unwrap(), b"new");
            assert_eq!(mode(&dest), want, "{perms:?}");
            assert_eq!(names(dir.path()), ["default.conf"]);
        }
    }

    #[test]
    fn an_existing_file_keeps_its_mode_and_owner() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("secret.conf");
        write(&dest, "old", 0o600);
        std::os::unix::fs::chown(&dest, Some(4321), Some(4322)).unwrap();
        let options = WriteOptions {
            perms: Some(0o644),
            backup: false,
        };

        let staged = Staged::stage(&dest, b"new", &options).unwrap();
        staged.commit().unwrap().0.finish();

        let meta = fs::metadata(&dest).unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"new");
        assert_eq!(meta.mode() & 0o7777, 0o600);
        assert_eq!((meta.uid(), meta.gid()), (4321, 4322));
        assert_eq!(names(dir.path()), ["secret.conf"]);
    }

    #[test]
    fn a_symlinked_destination_stays_a_link_and_its_target_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("shared");
        fs::create_dir(&shared).unwrap();
        write(&shared.join("real.conf"), "old", 0o640);
        let conf_d = dir.path().join("conf.d");
        fs::create_dir(&conf_d).unwrap();
        // A chain: conf.d/default.conf -> conf.d/hop -> ../shared/real.conf.
        std::os::unix::fs::symlink("hop", conf_d.join("default.conf")).unwrap();
        std::os::unix::fs::symlink("../shared/real.conf", conf_d.join("hop")).unwrap();
        let dest = conf_d.join("default.conf");
        let options = WriteOptions {
            perms: None,
            backup: true,
        };

        let staged = Staged::stage(&dest, b"new", &options).unwrap();
        let staged_in = fs::canonicalize(staged.path().parent().unwrap()).unwrap();
        assert_eq!(staged_in, fs::canonicalize(&shared).unwrap());
        staged.commit().unwrap().0.finish();

        assert!(
            fs::symlink_metadata(&dest)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read(&dest).unwrap(), b"new");
        assert_eq!(mode(&shared.join("real.conf")), 0o640);
        assert_eq!(names(&shared), ["real.conf", "real.conf.bak"]);
        assert_eq!(names(&conf_d), ["default.conf", "hop"]);

        // A dangling link: its target is created.
        let dangling = conf_d.join("new.conf");
        std::os::unix::fs::symlink("../shared/created.conf", &dangling).unwrap();
        Staged::stage(&dangling, b"made", &WriteOptions::default())
            .unwrap()
            .commit()
            .unwrap()
            .0
            .finish();
        assert_eq!(fs::read(shared.join("created.conf")).unwrap(), b"made");

        // A loop is an error that touches nothing.
        let looped = conf_d.join("loop.conf");
        std::os::unix::fs::symlink("loop.conf", &looped).unwrap();
        let error = Staged::stage(&looped, b"x", &WriteOptions::default()).unwrap_err();
        assert!(error.to_string().contains("symbolic links"), "{error}");
    }

    #[test]
    fn missing_parent_directories_are_created() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("etc/nginx/conf.d/default.conf");

        let staged = Staged::stage(&dest, b"new", &WriteOptions::default()).unwrap();
        staged.commit().unwrap().0.finish();

        assert_eq!(fs::read(&dest).unwrap(), b"new");
        assert_eq!(names(dest.parent().unwrap()), ["default.conf"]);
    }

    #[test]
    fn a_directory_that_cannot_be_created_is_reported_as_such() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("etc"), "a file, not a directory").unwrap();
        let dest = dir.path().join("etc/nginx/default.conf");

        let err = Staged::stage(&dest, b"new", &WriteOptions::default()).unwrap_err();

        let want = format!(
            "could not create directory {}: Not a directory (os error 20)",
            dir.path().join("etc/nginx").display()
        );
        assert!(matches!(err, OutputError::CreateDir { .. }), "{err:?}");
        assert_eq!(err.to_string(), want);
        assert_eq!(names(dir.path()), ["etc"]);
    }

    #[test]
    fn commit_replaces_the_contents_and_rollback_restores_the_old_bytes_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("default.conf");
        write(&dest, "old", 0o640);

        let staged = Staged::stage(&dest, b"new", &WriteOptions::default()).unwrap();
        let (committed, swap) = staged.commit().unwrap();
        assert_eq!(swap, Swap::Renamed);
        assert_eq!(fs::read(&dest).unwrap(), b"new");
        // The way back, under a hidden name, while the commit is undecided.
        let hidden = names(dir.path());
        assert_eq!(hidden.len(), 2, "{hidden:?}");
        assert!(
            hidden[0].starts_with(".default.conf.consul-render."),
            "{hidden:?}"
        );

        committed.rollback().unwrap();

        assert_eq!(fs::read(&dest).unwrap(), b"old");
        assert_eq!(mode(&dest), 0o640);
        assert_eq!(names(dir.path()), ["default.conf"]);
    }

    #[test]
    fn rollback_removes_a_destination_that_did_not_exist_before() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("default.conf");

        let staged = Staged::stage(&dest, b"new", &WriteOptions::default()).unwrap();
        let (committed, _) = staged.commit().unwrap();
        assert_eq!(names(dir.path()), ["default.conf"]);
        committed.rollback().unwrap();

        assert_eq!(read_current(&dest).unwrap(), None);
        assert!(names(dir.path()).is_empty());
    }

    #[test]
    fn finishing_or_dropping_a_commit_keeps_the_new_contents_and_nothing_else() {
        let finish: fn(Committed) = Committed::finish;
        let cases = [("finish", finish), ("drop", drop)];
        for (how, end) in cases {
            let dir = tempfile::tempdir().unwrap();
            let dest = dir.path().join("default.conf");
            write(&dest, "old", 0o644);

            let staged = Staged::stage(&dest, b"new", &WriteOptions::default()).unwrap();
            end(staged.commit().unwrap().0);

            assert_eq!(fs::read(&dest).unwrap(), b"new", "{how}");
            assert_eq!(names(dir.path()), ["default.conf"], "{how}");
        }
    }

    #[test]
    fn dropping_a_staged_file_removes_it_and_leaves_the_destination_alone() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("default.conf");
        write(&dest, "old", 0o644);

        let staged = Staged::stage(&dest, b"new", &WriteOptions::default()).unwrap();
        assert_eq!(fs::read(staged.path()).unwrap(), b"new");
        assert_eq!(names(dir.path()).len(), 2);
        drop(staged);

        assert_eq!(fs::read(&dest).unwrap(), b"old");
        assert_eq!(names(dir.path()), ["default.conf"]);
    }

    #[test]
    fn backup_keeps_the_replaced_contents_in_dot_bak() {
        // (old contents, backup asked for, files afterwards)
        let cases = [
            (Some("old"), true, vec!["default.conf", "default.conf.bak"]),
            (Some("old"), false, vec!["default.conf"]),
            (None, true, vec!["default.conf"]),
        ];
        for (old, backup, want) in cases {
            let dir = tempfile::tempdir().unwrap();
            let dest = dir.path().join("default.conf");
            if let Some(old) = old {
                write(&dest, old, 0o600);
            }
            let options = WriteOptions {
                perms: None,
                backup,
            };

            let staged = Staged::stage(&dest, b"new", &options).unwrap();
            staged.commit().unwrap().0.finish();

            assert_eq!(names(dir.path()), want, "{old:?} {backup}");
            if backup && old.is_some() {
                let bak = dir.path().join("default.conf.bak");
                assert_eq!(fs::read(&bak).unwrap(), b"old");
                // The old contents may be secret; the backup is as private.
                assert_eq!(mode(&bak), 0o600);
            }
        }
    }

    #[test]
    fn staging_over_a_directory_fails_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("conf.d");
        fs::create_dir(&dest).unwrap();

        let err = Staged::stage(&dest, b"new", &WriteOptions::default()).unwrap_err();

        assert!(matches!(err, OutputError::Stage { .. }), "{err:?}");
        assert_eq!(names(dir.path()), ["conf.d"]);
    }

    #[test]
    fn a_commit_that_cannot_keep_a_way_back_leaves_no_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("default.conf");
        write(&dest, "old", 0o644);
        let staged = Staged::stage(&dest, b"new", &WriteOptions::default()).unwrap();
        // Something else puts a directory where the file was: nothing can be
        // renamed over a non-empty one.
        fs::remove_file(&dest).unwrap();
        fs::create_dir(&dest).unwrap();
        fs::write(dest.join("inside"), "").unwrap();

        let err = staged.commit().unwrap_err();

        assert!(matches!(err, OutputError::Swap { .. }), "{err:?}");
        assert_eq!(names(dir.path()), ["default.conf"]);
        assert_eq!(names(&dest), ["inside"]);
    }

    #[test]
    fn a_commit_whose_rename_fails_keeps_the_old_file_and_leaves_no_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("default.conf");
        write(&dest, "old", 0o644);
        let options = WriteOptions {
            perms: None,
            backup: true,
        };
        let staged = Staged::stage(&dest, b"new", &options).unwrap();
        // Not even root may link or rename over an immutable file, so the way
        // back is a copy, the backup is written, and only the rename fails.
        let Some(_immutable) = Immutable::new(&dest) else {
            return;
        };

        let err = staged.commit().unwrap_err();

        match &err {
            OutputError::Swap { path, source } => {
                assert_eq!(path, &dest);
                assert_eq!(source.raw_os_error(), Some(libc::EPERM));
            }
            other => panic!("expected Swap, got {other:?}"),
        }
        assert_eq!(fs::read(&dest).unwrap(), b"old");
        assert_eq!(names(dir.path()), ["default.conf", "default.conf.bak"]);
    }

    #[test]
    fn staging_on_a_full_disk_fails_and_leaves_the_old_file_intact() {
        let dir = tempfile::tempdir().unwrap();
        let Some(_tmpfs) = Mount::tmpfs(dir.path(), "64k") else {
            return;
        };
        let dest = dir.path().join("default.conf");
        write(&dest, "old", 0o644);

        let err = Staged::stage(&dest, &vec![b'x'; 1 << 20], &WriteOptions::default()).unwrap_err();

        match &err {
            OutputError::Stage { path, source } => {
                assert_eq!(path, &dest);
                assert_eq!(source.raw_os_error(), Some(libc::ENOSPC));
            }
            other => panic!("expected Stage, got {other:?}"),
        }
        assert_eq!(
            err.to_string(),
            format!(
                "could not stage {}: No space left on device (os error 28)",
                dest.display()
            )
        );
        assert_eq!(fs::read(&dest).unwrap(), b"old");
        assert_eq!(names(dir.path()), ["default.conf"]);
    }

    #[test]
    fn a_bind_mounted_destination_is_written_and_rolled_back_in_place() {
        let source_dir = tempfile::tempdir().unwrap();
        let source = source_dir.path().join("nginx.conf");
        write(&source, "old", 0o640);
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("default.conf");
        write(&dest, "", 0o644);
        let Some(_bind) = Mount::bind(&source, &dest) else {
            return;
        };
        let options = WriteOptions {
            perms: None,
            backup: true,
        };

        let staged = Staged::stage(&dest, b"new", &options).unwrap();
        let (committed, swap) = staged.commit().unwrap();

        assert_eq!(swap, Swap::InPlace);
        // Written through the mount into the file it shows.
        assert_eq!(fs::read(&source).unwrap(), b"new");
        assert_eq!(
            fs::read(dir.path().join("default.conf.bak")).unwrap(),
            b"old"
        );

        committed.rollback().unwrap();

        assert_eq!(fs::read(&dest).unwrap(), b"old");
        assert_eq!(fs::read(&source).unwrap(), b"old");
        assert_eq!(mode(&source), 0o640);
        assert_eq!(names(dir.path()), ["default.conf", "default.conf.bak"]);
        assert_eq!(names(source_dir.path()), ["nginx.conf"]);
    }

    #[test]
    fn replace_keeps_mode_owner_and_backup_and_leaves_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("secret.conf");
        write(&dest, "old", 0o600);
        std::os::unix::fs::chown(&dest, Some(4321), Some(4322)).unwrap();
        let options = WriteOptions {
            perms: Some(0o644),
            backup: true,
        };

        let swap = Staged::stage(&dest, b"new", &options)
            .unwrap()
            .replace()
            .unwrap();

        assert_eq!(swap, Swap::Renamed);
        let meta = fs::metadata(&dest).unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"new");
        assert_eq!(meta.mode() & 0o7777, 0o600);
        assert_eq!((meta.uid(), meta.gid()), (4321, 4322));
        assert_eq!(
            fs::read(dir.path().join("secret.conf.bak")).unwrap(),
            b"old"
        );
        assert_eq!(names(dir.path()), ["secret.conf", "secret.conf.bak"]);
    }

    #[test]
    fn a_bind_mounted_destination_is_replaced_in_place_without_leftovers() {
        let source_dir = tempfile::tempdir().unwrap();
        let source = source_dir.path().join("nginx.conf");
        write(&source, "old", 0o640);
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("default.conf");
        write(&dest, "", 0o644);
        let Some(_bind) = Mount::bind(&source, &dest) else {
            return;
        };

        let staged = Staged::stage(&dest, b"new", &WriteOptions::default()).unwrap();
        assert_eq!(staged.replace().unwrap(), Swap::InPlace);

        assert_eq!(fs::read(&source).unwrap(), b"new");
        assert_eq!(mode(&source), 0o640);
        assert_eq!(names(dir.path()), ["default.conf"]);
        assert_eq!(names(source_dir.path()), ["nginx.conf"]);
    }

    #[test]
    fn read_current_gives_the_contents_or_none_when_there_is_no_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("present"), "contents").unwrap();
        let cases = [("present", Some(b"contents".to_vec())), ("absent", None)];
        for (name, want) in cases {
            assert_eq!(
                read_current(&dir.path().join(name)).unwrap(),
                want,
                "{name}"
            );
        }

        let err = read_current(dir.path()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "could not read {}: Is a directory (os error 21)",
                dir.path().display()
            )
        );
    }

    #[test]
    fn leftovers_of_a_killed_run_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("default.conf");
        fs::write(&dest, "live").unwrap();
        for name in [
            ".default.conf.consul-render.a1",
            ".default.conf.consul-render.b2",
            ".other.conf.consul-render.c3",
            "default.conf.bak",
        ] {
            fs::write(dir.path().join(name), "x").unwrap();
        }
        assert_eq!(remove_leftovers(&dest), 2);
        let mut left: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                ".other.conf.consul-render.c3",
                "default.conf",
                "default.conf.bak"
            ]
        );
        assert_eq!(remove_leftovers(&dir.path().join("missing/dir/x.conf")), 0);
    }
}
