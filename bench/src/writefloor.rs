//! The write floor: the CPU time the write itself costs, measured by the
//! bench in the same run and on the same filesystem as the tools' files.
//!
//! Both tools write a changed file the same way: read the current file,
//! create a temp file next to it, write, set its mode, fsync, rename it
//! over the destination. That much of each change's CPU is the same for
//! any tool that writes safely; the bench reports CPU per change beyond it
//! next to the total.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::thread;
use std::time::Duration;

use crate::resources::thread_cpu_time;

/// Pause between writes, so the disk sees them spaced as the tools' are.
const GAP: Duration = Duration::from_millis(5);

/// CPU time per 1,000 safe writes of `bytes` bytes in `dir` (created and
/// removed here), over `writes` writes.
pub fn measure(dir: &Path, bytes: usize, writes: usize) -> Duration {
    fs::create_dir_all(dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    let destination = dir.join("upstreams.conf");
    let text = vec![b'x'; bytes];
    fs::write(&destination, &text)
        .unwrap_or_else(|e| panic!("writing {}: {e}", destination.display()));
    let mut spent = Duration::ZERO;
    for i in 0..writes {
        let before = thread_cpu_time();
        write_safely(
            &destination,
            &dir.join(format!(".upstreams.conf.{i}")),
            &text,
        );
        spent += thread_cpu_time().saturating_sub(before);
        thread::sleep(GAP);
    }
    let _ = fs::remove_dir_all(dir);
    spent * 1000 / u32::try_from(writes.max(1)).unwrap_or(u32::MAX)
}

fn write_safely(destination: &Path, temp: &Path, text: &[u8]) {
    let current = fs::read(destination).unwrap_or_else(|e| fail("reading", e));
    assert_eq!(
        current.len(),
        text.len(),
        "write floor: the file was replaced by another size"
    );
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(temp)
        .unwrap_or_else(|e| fail("creating", e));
    file.write_all(text).unwrap_or_else(|e| fail("writing", e));
    file.set_permissions(fs::Permissions::from_mode(0o644))
        .unwrap_or_else(|e| fail("setting the mode", e));
    file.sync_all().unwrap_or_else(|e| fail("fsync", e));
    drop(file);
    fs::rename(temp, destination).unwrap_or_else(|e| fail("renaming", e));
}

fn fail(what: &str, error: std::io::Error) -> ! {
    panic!("write floor: {what}: {error}")
}
