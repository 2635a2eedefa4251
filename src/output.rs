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
//! A template may name who owns the destination (`user`, `group`). The
//! names are looked up on every write, as consul-template does, so a user
//! created after start works from the next write on; the staged file is
//! given that owner before it goes live, so the destination never exists
//! with the wrong one and a check reads exactly what goes live.
//!
//! Every file it creates besides the destination and `<dest>.bak` is named
//! `.<file name>.consul-render.<random>` and is removed again on every path,
//! so anything a crash leaves behind is easy to recognise.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File, Metadata, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::unistd::{Group, User};
use tempfile::{NamedTempFile, TempPath};

/// Mode of a destination that did not exist before, unless told otherwise.
const DEFAULT_MODE: u32 = 0o644;

/// Mode of directories created for a destination.
const DIR_MODE: u32 = 0o755;

/// How to write a destination.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// Mode for a destination that does not exist yet (0o644 when `None`). An
    /// existing destination keeps its own mode, and its owner and group
    /// where `owner` does not name others.
    pub perms: Option<u32>,
    /// Keep `<dest>.bak` with the contents being replaced.
    pub backup: bool,
    /// Who owns the destination after a write. Unset sides keep the old
    /// file's owner or group (ours for a new file).
    pub owner: Owner,
}

/// The user and group a destination should belong to, as the template
/// names them. The default leaves both as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Owner {
    /// A user name or a numeric uid; `None` leaves the owner as it is.
    pub user: Option<String>,
    /// A group name or a numeric gid; `None` leaves the group as it is.
    pub group: Option<String>,
}

impl Owner {
    /// The numeric ids for `dest`'s write. A number is taken as the id
    /// itself, whether or not such a user exists (consul-template does the
    /// same, and containers often run with ids that have no name); an empty
    /// string and -1 are unset, as consul-template has them (its old `uid =
    /// -1` included).
    fn resolve(&self, dest: &Path) -> Result<Ids, OutputError> {
        let uid = id(
            dest,
            self.user.as_deref(),
            |name| Ok(User::from_name(name)?.map(|user| user.uid.as_raw())),
            |name| OutputError::UnknownUser {
                path: dest.to_owned(),
                name,
            },
        )?;
        let gid = id(
            dest,
            self.group.as_deref(),
            |name| Ok(Group::from_name(name)?.map(|group| group.gid.as_raw())),
            |name| OutputError::UnknownGroup {
                path: dest.to_owned(),
                name,
            },
        )?;
        Ok(Ids { uid, gid })
    }
}

/// The id `name` stands for: a number is the id, anything else goes to
/// `look_up`, and a name it does not know is `unknown`.
fn id(
    dest: &Path,
    name: Option<&str>,
    look_up: impl FnOnce(&str) -> nix::Result<Option<u32>>,
    unknown: impl FnOnce(String) -> OutputError,
) -> Result<Option<u32>, OutputError> {
    let Some(name) = name.filter(|name| !name.is_empty()) else {
        return Ok(None);
    };
    if let Ok(id) = name.parse::<i64>() {
        return match u32::try_from(id) {
            // -1 as well: the id chown(2) reads as "leave it alone".
            Ok(u32::MAX) => Ok(None),
            Ok(id) => Ok(Some(id)),
            Err(_) if id == -1 => Ok(None),
            Err(_) => Err(unknown(name.to_owned())),
        };
    }
    match look_up(name) {
        Ok(Some(id)) => Ok(Some(id)),
        Ok(None) => Err(unknown(name.to_owned())),
        Err(errno) => Err(OutputError::Lookup {
            path: dest.to_owned(),
            name: name.to_owned(),
            source: errno.into(),
        }),
    }
}

/// An [`Owner`] as numeric ids; `None` leaves that side alone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Ids {
    uid: Option<u32>,
    gid: Option<u32>,
}

impl Ids {
    /// Whether a file owned as in `meta` needs a chown.
    fn differ_from(self, meta: &Metadata) -> bool {
        self.uid.is_some_and(|uid| uid != meta.uid())
            || self.gid.is_some_and(|gid| gid != meta.gid())
    }

    /// These ids, with the sides left unset taken from `meta`: a file that
    /// changes hands gets its final owner and group in one chown, so the
    /// old owner never holds the new contents.
    fn over(self, meta: &Metadata) -> Ids {
        Ids {
            uid: Some(self.uid.unwrap_or(meta.uid())),
            gid: Some(self.gid.unwrap_or(meta.gid())),
        }
    }

    /// The mode an existing file keeps when it is rewritten for these ids:
    /// its own, less set-user-ID and set-group-ID when it changes hands,
    /// as chown(2) takes them (a set-user-ID file given to root must not
    /// stay one).
    fn mode_for(self, meta: &Metadata) -> u32 {
        if self.differ_from(meta) {
            meta.mode() & 0o1777
        } else {
            meta.mode() & 0o7777
        }
    }

    /// Gives `file` these ids, then `mode`: a chown clears the set-user-ID
    /// and set-group-ID bits, so the mode is set after it.
    fn apply(self, file: &File, mode: u32) -> io::Result<()> {
        if self == Ids::default() {
            return Ok(());
        }
        std::os::unix::fs::fchown(file, self.uid, self.gid)?;
        file.set_permissions(Permissions::from_mode(mode))
    }
}

/// Whether `dest` is owned as `owner` asks (a side left unset always is).
/// Identical contents with the wrong owner still need a write, as in
/// consul-template. A destination that cannot be examined does not match,
/// so a write sorts it out.
pub fn has_owner(dest: &Path, owner: &Owner) -> Result<bool, OutputError> {
    let ids = owner.resolve(dest)?;
    if ids == Ids::default() {
        return Ok(true);
    }
    Ok(fs::metadata(dest).is_ok_and(|meta| !ids.differ_from(&meta)))
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

    /// The template names a user that does not exist here; nothing was
    /// written.
    #[error("could not write {path}: unknown user {name:?}")]
    UnknownUser { path: PathBuf, name: String },

    /// The template names a group that does not exist here; nothing was
    /// written.
    #[error("could not write {path}: unknown group {name:?}")]
    UnknownGroup { path: PathBuf, name: String },

    /// The user or group database could not be searched for `name`;
    /// nothing was written.
    #[error("could not write {path}: could not look up {name:?}: {source}")]
    Lookup {
        path: PathBuf,
        name: String,
        source: io::Error,
    },

    /// The new contents could not be given the owner asked for (not root?);
    /// the destination is untouched.
    #[error("could not give {path} the owner asked for: {source}")]
    Chown { path: PathBuf, source: io::Error },
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
    /// Given to the destination itself after an in-place write, which
    /// keeps the destination's inode and so not the staged file's owner.
    owner: Ids,
}

impl Staged {
    /// Creates missing parent directories (0755), writes `contents` to a
    /// temporary file in the destination's directory, fsyncs it, and gives it
    /// the mode and (when permitted) owner and group of the existing
    /// destination, or `options.perms` (default 0644) for a new one. The
    /// owner and group in `options.owner` are looked up and override the
    /// old ones; failing to look them up or to give them is an error.
    pub fn stage(
        dest: &Path,
        contents: &[u8],
        options: &WriteOptions,
    ) -> Result<Staged, OutputError> {
        let stage_error = |source| OutputError::Stage {
            path: dest.to_owned(),
            source,
        };
        let owner = options.owner.resolve(dest)?;
        let chown_error = |source| OutputError::Chown {
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
            Some(meta) if owner == Ids::default() => {
                like(file.as_file(), meta).map_err(stage_error)?
            }
            Some(meta) => owner
                .over(meta)
                .apply(file.as_file(), owner.mode_for(meta))
                .map_err(chown_error)?,
            None => {
                // A mode asked for (`perms`) is kept whole, owner or not.
                let mode = options.perms.unwrap_or(DEFAULT_MODE);
                file.as_file()
                    .set_permissions(Permissions::from_mode(mode))
                    .map_err(stage_error)?;
                owner.apply(file.as_file(), mode).map_err(chown_error)?;
            }
        }
        file.as_file().sync_all().map_err(stage_error)?;

        Ok(Staged {
            dest: dest.to_owned(),
            file,
            backup: options.backup,
            owner,
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
        let Staged {
            dest,
            file,
            backup,
            owner,
        } = self;
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
        let mut previous = match previous {
            Some(previous) if !previous.linked => previous,
            _ => Previous::copy(&dest, dir, name, &meta).map_err(swap_error)?,
        };
        // The owner changes first, so that the old one never holds the
        // new contents.
        let written = (|| {
            if owner.differ_from(&meta) {
                previous.before_chown = Some(meta.clone());
                owner.apply(&File::open(&dest)?, owner.mode_for(&meta))?;
            }
            overwrite(&dest, err.file.path())
        })();
        if let Err(source) = written {
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
                    if let Some(meta) = &previous.before_chown {
                        File::open(&dest)
                            .and_then(|file| like(&file, meta))
                            .map_err(rollback_error)?;
                    }
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
    /// The destination's owner, group and mode before an in-place write
    /// gave it another owner; an in-place rollback puts them back.
    before_chown: Option<Metadata>,
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
                before_chown: None,
            }),
            Err(_) => Previous::copy(dest, dir, name, meta),
        }
    }

    fn copy(dest: &Path, dir: &Path, name: &OsStr, meta: &Metadata) -> io::Result<Previous> {
        let copy = copy_to_temp(dest, dir, name, meta)?;
        Ok(Previous {
            path: copy.into_temp_path(),
            linked: false,
            before_chown: None,
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
                ..WriteOptions::default()
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
    fn a_staging_file_is_created_0600_and_hidden_beside_the_destination() {
        let dir = tempfile::tempdir().unwrap();
        let staging = temp_in(dir.path(), OsStr::new("default.conf")).unwrap();
        // Before any text or final mode: nobody else may read it yet.
        assert_eq!(mode(staging.path()), 0o600);
        assert_eq!(staging.path().parent(), Some(dir.path()));
        let name = staging.path().file_name().unwrap().to_string_lossy();
        assert!(name.starts_with(".default.conf.consul-render."), "{name}");
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
            ..WriteOptions::default()
        };

        let staged = Staged::stage(&dest, b"new", &options).unwrap();
        staged.commit().unwrap().0.finish();

        let meta = fs::metadata(&dest).unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"new");
        assert_eq!(meta.mode() & 0o7777, 0o600);
        assert_eq!((meta.uid(), meta.gid()), (4321, 4322));
        assert_eq!(names(dir.path()), ["secret.conf"]);
    }

    fn owner(user: Option<&str>, group: Option<&str>) -> WriteOptions {
        WriteOptions {
            owner: Owner {
                user: user.map(str::to_owned),
                group: group.map(str::to_owned),
            },
            ..WriteOptions::default()
        }
    }

    fn ids(path: &Path) -> (u32, u32) {
        let meta = fs::metadata(path).unwrap();
        (meta.uid(), meta.gid())
    }

    #[test]
    fn a_new_file_gets_the_owner_asked_for_by_id_or_name() {
        let testbed::Nobody { uid, group, gid } = testbed::nobody();
        let cases = [
            (owner(Some("4321"), Some("4322")), (4321, 4322)),
            (owner(Some("nobody"), Some(group)), (uid, gid)),
            (owner(Some("nobody"), Some("4322")), (uid, 4322)),
        ];
        for (options, want) in cases {
            let dir = tempfile::tempdir().unwrap();
            let dest = dir.path().join("default.conf");

            let staged = Staged::stage(&dest, b"new", &options).unwrap();
            // Before the swap: a check of the staged file sees the final owner.
            assert_eq!(ids(staged.path()), want, "{options:?}");
            staged.commit().unwrap().0.finish();

            assert_eq!(fs::read(&dest).unwrap(), b"new");
            assert_eq!(ids(&dest), want, "{options:?}");
            assert_eq!(mode(&dest), 0o644, "{options:?}");
            assert_eq!(names(dir.path()), ["default.conf"]);
        }
    }

    #[test]
    fn a_side_not_asked_for_keeps_the_old_file_s() {
        // (user, group, owner afterwards) over a file owned by 1000:1001
        let cases = [
            (Some("4321"), None, (4321, 1001)),
            (None, Some("4322"), (1000, 4322)),
            (None, None, (1000, 1001)),
            (Some(""), Some(""), (1000, 1001)),
            (Some("-1"), Some("4294967295"), (1000, 1001)),
        ];
        for (user, group, want) in cases {
            let dir = tempfile::tempdir().unwrap();
            let dest = dir.path().join("default.conf");
            write(&dest, "old", 0o644);
            std::os::unix::fs::chown(&dest, Some(1000), Some(1001)).unwrap();

            Staged::stage(&dest, b"new", &owner(user, group))
                .unwrap()
                .replace()
                .unwrap();

            assert_eq!(ids(&dest), want, "{user:?} {group:?}");
        }
    }

    #[test]
    fn a_file_given_away_keeps_its_mode_but_not_set_user_id() {
        // (old file's mode, or perms for a new file; mode afterwards). An
        // old file that changes hands loses set-user-ID and set-group-ID,
        // as chown(2) takes them; a new file's perms are kept whole.
        let cases = [
            (Some(0o640), None, 0o640),
            (Some(0o6750), None, 0o0750),
            (Some(0o1777), None, 0o1777),
            (None, Some(0o2750), 0o2750),
            (None, Some(0o600), 0o600),
        ];
        for (old, perms, want) in cases {
            let dir = tempfile::tempdir().unwrap();
            let dest = dir.path().join("default.conf");
            if let Some(old) = old {
                write(&dest, "old", old);
            }
            let options = WriteOptions {
                perms,
                ..owner(Some("4321"), Some("4322"))
            };

            let staged = Staged::stage(&dest, b"new", &options).unwrap();
            assert_eq!(mode(staged.path()), want, "{old:?} {perms:?}");
            staged.commit().unwrap().0.finish();

            assert_eq!(mode(&dest), want, "{old:?} {perms:?}");
            assert_eq!(ids(&dest), (4321, 4322));
        }
    }

    #[test]
    fn an_unknown_user_or_group_is_an_error_that_touches_nothing() {
        let cases = [
            (
                owner(Some("no-such-user-here"), Some("4322")),
                "unknown user \"no-such-user-here\"",
            ),
            (
                owner(Some("4321"), Some("no-such-group-here")),
                "unknown group \"no-such-group-here\"",
            ),
            // No id, and no name either.
            (owner(Some("-5"), None), "unknown user \"-5\""),
        ];
        for (options, want) in cases {
            let dir = tempfile::tempdir().unwrap();
            let dest = dir.path().join("default.conf");
            write(&dest, "old", 0o640);
            let before = ids(&dest);

            let err = Staged::stage(&dest, b"new", &options).unwrap_err();

            assert!(
                matches!(
                    err,
                    OutputError::UnknownUser { .. } | OutputError::UnknownGroup { .. }
                ),
                "{err:?}"
            );
            assert_eq!(
                err.to_string(),
                format!("could not write {}: {want}", dest.display())
            );
            assert_eq!(
                has_owner(&dest, &options.owner).unwrap_err().to_string(),
                err.to_string()
            );
            assert_eq!(fs::read(&dest).unwrap(), b"old");
            assert_eq!((ids(&dest), mode(&dest)), (before, 0o640));
            assert_eq!(names(dir.path()), ["default.conf"]);
        }
        // Nor is a new destination created.
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("default.conf");
        Staged::stage(&dest, b"new", &owner(Some("no-such-user-here"), None)).unwrap_err();
        assert!(names(dir.path()).is_empty());
    }

    #[test]
    fn has_owner_compares_only_the_sides_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("default.conf");
        write(&dest, "old", 0o644);
        std::os::unix::fs::chown(&dest, Some(4321), Some(4322)).unwrap();
        let cases = [
            (None, None, true),
            (Some("4321"), None, true),
            (None, Some("4322"), true),
            (Some("4321"), Some("4322"), true),
            (Some("4321"), Some("4323"), false),
            (Some("0"), None, false),
        ];
        for (user, group, want) in cases {
            let asked = owner(user, group).owner;
            assert_eq!(
                has_owner(&dest, &asked).unwrap(),
                want,
                "{user:?} {group:?}"
            );
        }
        // A destination that is not there is owned by nobody asked for.
        let missing = dir.path().join("missing.conf");
        assert!(!has_owner(&missing, &owner(Some("4321"), None).owner).unwrap());
    }

    #[test]
    fn a_bind_mounted_destination_gets_its_owner_in_place_and_back_on_rollback() {
        let source_dir = tempfile::tempdir().unwrap();
        let source = source_dir.path().join("nginx.conf");
        write(&source, "old", 0o6750);
        std::os::unix::fs::chown(&source, Some(1000), Some(1001)).unwrap();
        fs::set_permissions(&source, Permissions::from_mode(0o6750)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("default.conf");
        write(&dest, "", 0o644);
        let Some(_bind) = Mount::bind(&source, &dest) else {
            return;
        };

        let staged = Staged::stage(&dest, b"new", &owner(Some("4321"), Some("4322"))).unwrap();
        let (committed, swap) = staged.commit().unwrap();

        assert_eq!(swap, Swap::InPlace);
        assert_eq!(fs::read(&source).unwrap(), b"new");
        // Given away: no longer set-user-ID or set-group-ID.
        assert_eq!((ids(&source), mode(&source)), ((4321, 4322), 0o0750));

        committed.rollback().unwrap();

        assert_eq!(fs::read(&source).unwrap(), b"old");
        assert_eq!((ids(&source), mode(&source)), ((1000, 1001), 0o6750));
        assert_eq!(names(dir.path()), ["default.conf"]);
        assert_eq!(names(source_dir.path()), ["nginx.conf"]);
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
            ..WriteOptions::default()
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
                ..WriteOptions::default()
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
            ..WriteOptions::default()
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
            ..WriteOptions::default()
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
            ..WriteOptions::default()
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
