//! consul-template's `sandbox_path`: the directory a template's `file`
//! function may read from. A path is judged where it really is, with its
//! symlinks resolved, so neither `..` nor a link leads out of it.
//!
//! This is the one place the template module touches the file system, and
//! only to resolve paths; reading the files is `local_file`'s job. The
//! check runs at every render, so a link changed to point outside is
//! refused from the next render on.

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

/// The directory a template's `file` reads are confined to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox(PathBuf);

impl Sandbox {
    /// The sandbox `dir`, which need not exist yet; a relative one counts
    /// from the working directory, as consul-template's does.
    pub fn new(dir: PathBuf) -> Sandbox {
        Sandbox(dir)
    }

    /// Whether `file` may read `path`; the error says why not, in the
    /// words of consul-template's (`'…' is outside of sandbox`).
    ///
    /// consul-template compares the path with its symlinks resolved
    /// against the sandbox as written. Here the sandbox's own symlinks are
    /// resolved too, and a relative path counts from the working directory,
    /// where it is read; consul-template refuses every file under a
    /// symlinked sandbox, and every relative path under an absolute one.
    /// A path that does not exist yet is judged as far as it exists, the
    /// rest lexically, and then waits like any missing file, where
    /// consul-template fails the render.
    pub fn check(&self, path: &str) -> Result<(), SandboxError> {
        let sandbox = resolve(&self.0).map_err(|source| SandboxError::Unresolved {
            what: format!("sandbox {}", self.0.display()),
            source,
        })?;
        let real = resolve(Path::new(path)).map_err(|source| SandboxError::Unresolved {
            what: format!("'{path}'"),
            source,
        })?;
        if real.starts_with(&sandbox) {
            return Ok(());
        }
        Err(SandboxError::Outside {
            path: path.to_owned(),
            sandbox: self.0.clone(),
            resolved: (real != Path::new(path)).then_some(real),
        })
    }
}

/// Why a template's `file` may not read a path.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The sandbox or the path exists in part but cannot be resolved (a
    /// dangling symlink, a directory that cannot be searched).
    #[error("cannot resolve {what}: {source}")]
    Unresolved { what: String, source: io::Error },
    /// `path` is, or leads (as `resolved`), outside the sandbox.
    #[error(
        "'{path}' is outside of sandbox {}{}",
        sandbox.display(),
        resolved.as_ref().map(|r| format!(" (it resolves to {})", r.display())).unwrap_or_default()
    )]
    Outside {
        path: String,
        sandbox: PathBuf,
        resolved: Option<PathBuf>,
    },
}

/// Where `path` really is: absolute, with every symlink resolved as far as
/// the path exists. The part that does not exist yet holds no symlinks, so
/// it is taken lexically, `..` and all. An entry that exists but cannot be
/// resolved (a dangling symlink, a directory that cannot be searched) is
/// an error.
fn resolve(path: &Path) -> io::Result<PathBuf> {
    let path = std::path::absolute(path)?;
    let mut existing = path.as_path();
    // The components that do not exist, last first.
    let mut missing = Vec::new();
    loop {
        match fs::canonicalize(existing) {
            Ok(mut real) => {
                for component in missing.iter().rev() {
                    match component {
                        Component::ParentDir => {
                            real.pop();
                        }
                        Component::Normal(name) => real.push(name),
                        Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
                    }
                }
                return Ok(real);
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound && !is_entry(existing) => {
                let mut components = existing.components();
                // The root always resolves, so a path not found has a last
                // component to take off.
                let Some(last) = components.next_back() else {
                    return Err(error);
                };
                missing.push(last);
                existing = components.as_path();
            }
            Err(error) => return Err(error),
        }
    }
}

/// Whether `path` names a directory entry, a dangling symlink included.
fn is_entry(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    /// A sandbox `<tmp>/sb` holding `in.txt`, `sub/deep.txt`, `..hidden`,
    /// a link to `in.txt`, a link out to `<tmp>/out/secret.txt`, a dangling
    /// link, and a symlinked directory leading out; plus `<tmp>/sblink`, a
    /// link to the sandbox itself.
    fn fixture() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        // The temporary directory itself may sit behind a symlink.
        let root = fs::canonicalize(dir.path()).unwrap();
        let sb = root.join("sb");
        fs::create_dir_all(sb.join("sub")).unwrap();
        fs::create_dir_all(root.join("out")).unwrap();
        fs::write(sb.join("in.txt"), "in").unwrap();
        fs::write(sb.join("sub/deep.txt"), "deep").unwrap();
        fs::write(sb.join("..hidden"), "hidden").unwrap();
        fs::write(root.join("out/secret.txt"), "secret").unwrap();
        symlink("in.txt", sb.join("ok-link")).unwrap();
        symlink(root.join("out/secret.txt"), sb.join("bad-link")).unwrap();
        symlink(root.join("out/nothing"), sb.join("dangling")).unwrap();
        symlink(root.join("out"), sb.join("out-dir")).unwrap();
        symlink(&sb, root.join("sblink")).unwrap();
        (dir, root)
    }

    #[test]
    fn allows_what_resolves_inside_and_refuses_what_resolves_outside() {
        let (_dir, root) = fixture();
        let sandbox = Sandbox::new(root.join("sb"));
        let r = root.display();
        let inside = [
            format!("{r}/sb/in.txt"),
            format!("{r}/sb/sub/deep.txt"),
            format!("{r}/sb/sub/../in.txt"),
            format!("{r}/sb/./sub//deep.txt"),
            format!("{r}/sb/ok-link"),
            format!("{r}/sb/..hidden"),
            format!("{r}/sb"),
            format!("{r}/sblink/in.txt"),
            // Not there yet: judged lexically, then waited for.
            format!("{r}/sb/later.txt"),
            format!("{r}/sb/new/dir/later.txt"),
            format!("{r}/sb/new/../later.txt"),
        ];
        for path in &inside {
            assert!(sandbox.check(path).is_ok(), "{path}");
        }
        let outside = [
            (format!("{r}/out/secret.txt"), None),
            ("/etc/passwd".to_owned(), None),
            (format!("{r}/sb/../out/secret.txt"), Some("out/secret.txt")),
            (
                format!("{r}/sb/sub/../../out/secret.txt"),
                Some("out/secret.txt"),
            ),
            (format!("{r}/sb/bad-link"), Some("out/secret.txt")),
            (format!("{r}/sb/out-dir/secret.txt"), Some("out/secret.txt")),
            (format!("{r}/sbx/in.txt"), None),
            (format!("{r}/sb/new/../../out/later"), Some("out/later")),
        ];
        for (path, resolves_to) in &outside {
            let error = sandbox.check(path).expect_err(path);
            let resolved = match resolves_to {
                Some(tail) => format!(" (it resolves to {r}/{tail})"),
                None => String::new(),
            };
            assert_eq!(
                error.to_string(),
                format!("'{path}' is outside of sandbox {r}/sb{resolved}"),
                "{path}"
            );
        }
    }

    #[test]
    fn a_symlinked_sandbox_is_judged_where_it_leads() {
        let (_dir, root) = fixture();
        let sandbox = Sandbox::new(root.join("sblink"));
        let r = root.display();
        assert!(sandbox.check(&format!("{r}/sblink/in.txt")).is_ok());
        assert!(sandbox.check(&format!("{r}/sb/in.txt")).is_ok());
        assert!(sandbox.check(&format!("{r}/sblink/bad-link")).is_err());
    }

    #[test]
    fn a_dangling_symlink_cannot_be_judged_and_is_refused() {
        let (_dir, root) = fixture();
        let sandbox = Sandbox::new(root.join("sb"));
        for path in [root.join("sb/dangling"), root.join("sb/dangling/below.txt")] {
            let path = path.display().to_string();
            let error = sandbox.check(&path).expect_err(&path).to_string();
            assert!(
                error.starts_with(&format!("cannot resolve '{path}': ")),
                "{error}"
            );
        }
    }

    #[test]
    fn relative_paths_count_from_the_working_directory() {
        let (_dir, root) = fixture();
        let cwd = std::env::current_dir().unwrap();
        let inside = Sandbox::new(cwd.clone());
        assert!(inside.check("Cargo.toml").is_ok());
        assert!(inside.check("./src/../Cargo.toml").is_ok());
        assert!(inside.check("not/there/yet").is_ok());
        let error = inside.check("../outside").unwrap_err().to_string();
        assert!(
            error.starts_with(&format!(
                "'../outside' is outside of sandbox {}",
                cwd.display()
            )),
            "{error}"
        );

        // A relative sandbox counts from there too.
        let relative = Sandbox::new(PathBuf::from("src"));
        assert!(relative.check("src/lib.rs").is_ok());
        assert!(relative.check("Cargo.toml").is_err());

        // And a relative path is outside an absolute sandbox elsewhere.
        let elsewhere = Sandbox::new(root.join("sb"));
        assert!(elsewhere.check("in.txt").is_err());
    }
}
