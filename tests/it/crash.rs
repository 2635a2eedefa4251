//! Crashes and full disks (promise 6): whatever happens to the process or
//! the disk, the destination holds one complete render.
//!
//! consul-render is SIGKILLed at pseudo-random moments while a KV value
//! changes 1,000 times; its destination is checked after every kill (and
//! by a reader throughout), and a fresh consul-render is started on it.
//! And it writes onto a tmpfs too small for the render.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tempfile::TempDir;
use testbed::{ConsulAgent, Process, wait_until};

use crate::support::{BIN, Daemon, wait_for_file, write};

const T: Duration = Duration::from_secs(30);

/// The KV key whose value every render is made of.
const KEY: &str = "crash/n";

/// How many times the value changes, and how often the process is killed
/// meanwhile.
const CHANGES: u64 = 1_000;
const KILLS: u64 = 30;

/// Body lines per render: with [`PAD`], about 100 kB, so that a torn or
/// cut-short write cannot go unseen.
const LINES: usize = 1_000;
const PAD: &str = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghijklmnopqrstuv";

/// Renders `BEGIN n`, [`LINES`] lines each naming `n`, and `END n`.
fn template() -> String {
    format!(
        "{{%- set n = key(path=\"{KEY}\") -%}}\n\
         BEGIN {{{{ n }}}}\n\
         {{% for i in range(end={LINES}) -%}}\n\
         {{{{ i }}}} {{{{ n }}}} {PAD}\n\
         {{% endfor -%}}\n\
         END {{{{ n }}}}\n"
    )
}

/// What [`template`] renders for value `n`.
fn render(n: u64) -> String {
    let mut out = format!("BEGIN {n}\n");
    for i in 0..LINES {
        out += &format!("{i} {n} {PAD}\n");
    }
    out + &format!("END {n}\n")
}

/// The value `contents` is one complete render of, or what is wrong with
/// it.
fn complete_render(contents: &str) -> Result<u64, String> {
    let n = contents
        .strip_prefix("BEGIN ")
        .and_then(|rest| rest.split_once('\n'))
        .and_then(|(n, _)| n.parse().ok())
        .ok_or_else(|| {
            format!(
                "no BEGIN line in {} bytes starting {:?}",
                contents.len(),
                contents.chars().take(40).collect::<String>()
            )
        })?;
    let want = render(n);
    if contents == want {
        return Ok(n);
    }
    let first_difference = contents
        .lines()
        .zip(want.lines())
        .position(|(got, want)| got != want);
    Err(format!(
        "not one complete render of {n}: {} bytes (a render is {}), first differing line {first_difference:?}",
        contents.len(),
        want.len()
    ))
}

/// Files the output module leaves next to `dest` while it writes (the
/// staged file, the way back to the old one): `.<name>.consul-render.*`.
fn temp_files(dest: &Path) -> Vec<String> {
    let prefix = format!(
        ".{}.consul-render.",
        dest.file_name().unwrap().to_string_lossy()
    );
    let mut names: Vec<String> = std::fs::read_dir(dest.parent().unwrap())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(&prefix))
        .collect();
    names.sort();
    names
}

/// xorshift64: pseudo-random kill moments, reproducible from the printed
/// seed.
struct Moments(u64);

impl Moments {
    fn seeded() -> Moments {
        let seed = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1;
        eprintln!("kill moments seed: {seed}");
        Moments(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// One consul-render process on `template` → `dest`, its output in `log`.
fn start(consul: &ConsulAgent, template: &Path, dest: &Path, log: &Path) -> Process {
    let mut cmd = Command::new(BIN);
    cmd.arg(format!("-consul-addr={}", consul.http_addr()))
        .arg(format!(
            "-template={}:{}",
            template.display(),
            dest.display()
        ))
        .env_remove("CONSUL_HTTP_ADDR")
        .env_remove("CONSUL_HTTP_TOKEN");
    Process::spawn("consul-render", cmd, log)
}

/// Sets the flag to false when dropped.
struct StoreOnDrop<'a>(&'a AtomicBool);

impl Drop for StoreOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// What tells one version of `path` from the next: inode (a rename),
/// modification time and size (a write in place).
fn identity(path: &Path) -> Option<(u64, i64, i64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.ino(), meta.mtime(), meta.mtime_nsec(), meta.size()))
}

/// Like [`wait_until`], but polling without pause: a write lasts about a
/// millisecond, and polling every 15 ms would kill before or after it far
/// more often than during it.
fn spin_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + T;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {T:?} waiting for {what}"
        );
        std::thread::yield_now();
    }
}

/// How many renders the process logging to `log` has put on disk or found
/// there already.
fn renders_done(log: &Path) -> usize {
    let log = std::fs::read_to_string(log).unwrap_or_default();
    log.matches("rendered; written").count() + log.matches("rendered; unchanged").count()
}

/// Kinds of moment to kill consul-render at.
#[derive(Clone, Copy)]
enum Moment {
    /// Whatever it is doing: starting, waiting, rendering.
    Any,
    /// After it has rendered once or twice.
    AfterRenders,
    /// The moment the destination changes: a writer that is not atomic is
    /// half-way through.
    DestinationChanges,
    /// The moment a staged file appears: between stage and rename.
    NewStagedFile,
}

/// What [`kill_during_changes`] leaves: the last consul-render, running on
/// the destination, and the directories it all lives in.
struct AfterKills {
    _consul: ConsulAgent,
    _dir: TempDir,
    _logs: TempDir,
    dest: PathBuf,
    _process: Process,
    kills: u64,
    /// How many versions of the destination the reader checked.
    reads: u64,
    /// The most `.<name>.consul-render.*` files seen after any kill.
    most_temp_files: usize,
}

/// Changes the value [`CHANGES`] times from one thread while the main one
/// SIGKILLs consul-render [`KILLS`] times at pseudo-random moments of the
/// given kinds; after each kill, asserts that the destination holds one
/// complete render, no older than the one before, and starts a fresh
/// consul-render on it. A reader asserts the same of every version of the
/// destination meanwhile. Returns once the last consul-render has written
/// the last value.
fn kill_during_changes(kinds: &[Moment]) -> AfterKills {
    let consul = ConsulAgent::dev();
    consul.kv_put(KEY, "0");
    let dir = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let src = logs.path().join("big.tera");
    write(&src, &template());
    let dest = dir.path().join("out.conf");
    let log = |run: u64| logs.path().join(format!("run-{run}.log"));
    let mut process = start(&consul, &src, &dest, &log(0));
    wait_for_file(&dest, "the first render", T, |c| c == render(0));

    let mut moments = Moments::seeded();
    let written = AtomicU64::new(0);
    let mut kills = 0;
    let mut last = 0;
    let mut most_temp_files = 0;
    let killing = AtomicBool::new(true);
    let reads = std::thread::scope(|scope| {
        // Stops the reader however the kill loop ends, a panic included.
        let stop_reading = StoreOnDrop(&killing);
        scope.spawn(|| {
            for n in 1..=CHANGES {
                consul.kv_put(KEY, &n.to_string());
                written.store(n, Ordering::SeqCst);
            }
        });
        // Between kills too: every version of the destination that a
        // reader such as nginx can open is one complete render.
        let reader = scope.spawn(|| {
            let (mut seen, mut reads, mut last) = (None, 0, 0);
            while killing.load(Ordering::SeqCst) {
                let now = identity(&dest);
                if now == seen {
                    std::thread::yield_now();
                    continue;
                }
                seen = now;
                let contents = std::fs::read_to_string(&dest).expect("the destination");
                let n = complete_render(&contents).unwrap_or_else(|e| panic!("a reader found {e}"));
                assert!(n >= last, "a reader found {n} after {last}");
                (last, reads) = (n, reads + 1);
            }
            reads
        });
        while kills < KILLS {
            // Kills are spread over the changes, each at a pseudo-random
            // point of its stretch, and then at one of the kinds of moment.
            let stretch = CHANGES / KILLS;
            let at = kills * stretch + moments.below(stretch);
            wait_until(&format!("change {at} to be made"), T, || {
                written.load(Ordering::SeqCst) >= at
            });
            let changing = || written.load(Ordering::SeqCst) < CHANGES;
            match kinds[moments.below(kinds.len() as u64) as usize] {
                Moment::Any => {}
                Moment::AfterRenders => {
                    let renders = 1 + moments.below(2) as usize;
                    wait_until(&format!("{renders} renders of run {kills}"), T, || {
                        process.assert_running();
                        renders_done(&log(kills)) >= renders || !changing()
                    });
                }
                Moment::DestinationChanges => {
                    let before = identity(&dest);
                    spin_until("the destination to change", || {
                        identity(&dest) != before || !changing()
                    });
                }
                Moment::NewStagedFile => {
                    let before = temp_files(&dest);
                    spin_until("a new staged file", || {
                        temp_files(&dest).iter().any(|f| !before.contains(f)) || !changing()
                    });
                }
            }
            process.signal(libc::SIGKILL);
            let mut status = None;
            wait_until("the killed process to be reaped", T, || {
                status = process.exit_status();
                status.is_some()
            });
            assert_eq!(
                status.unwrap().signal(),
                Some(libc::SIGKILL),
                "run {kills} ended on its own:\n{}",
                process.log()
            );
            kills += 1;

            let contents = std::fs::read_to_string(&dest).expect("the destination");
            let n =
                complete_render(&contents).unwrap_or_else(|e| panic!("after kill {kills}: {e}"));
            assert!(
                n >= last,
                "after kill {kills}: the destination went back from {last} to {n}"
            );
            last = n;
            most_temp_files = most_temp_files.max(temp_files(&dest).len());
            process = start(&consul, &src, &dest, &log(kills));
        }
        drop(stop_reading);
        reader
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    });
    wait_for_file(&dest, "the last value's render", T, |c| {
        c == render(CHANGES)
    });
    process.assert_running();
    AfterKills {
        _consul: consul,
        _dir: dir,
        _logs: logs,
        dest,
        _process: process,
        kills,
        reads,
        most_temp_files,
    }
}

#[test]
fn kill_9_during_1000_rapid_changes_always_leaves_one_complete_render() {
    let after = kill_during_changes(&[
        Moment::Any,
        Moment::AfterRenders,
        Moment::DestinationChanges,
        Moment::NewStagedFile,
    ]);
    eprintln!(
        "{} kills, {} versions read; at most {} temp files after a kill; at the end: {:?}",
        after.kills,
        after.reads,
        after.most_temp_files,
        temp_files(&after.dest)
    );
}

#[test]
fn temp_files_left_by_kill_9_do_not_pile_up_across_restarts() {
    // Killed between stage and rename every time, so that each run can
    // leave a file behind for the next to deal with.
    let after = kill_during_changes(&[Moment::NewStagedFile]);
    let left = temp_files(&after.dest);
    // One kill can leave a staged file and the way back to the old one;
    // more than that are files of earlier runs that no start cleaned up.
    assert!(
        left.len() <= 2,
        "{} temp files left after {} kill-9 restarts: {left:?}",
        left.len(),
        after.kills
    );
}

/// A tmpfs mounted for as long as the guard lives.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` on `target`, or `None` (with a note on
    /// stderr) where this machine does not let us mount.
    fn mount(target: &Path, size: &str) -> Option<Tmpfs> {
        let source = CString::new("tmpfs").unwrap();
        let path = CString::new(target.as_os_str().as_bytes()).unwrap();
        let options = CString::new(format!("size={size}")).unwrap();
        // SAFETY: every pointer is a NUL-terminated string that outlives
        // the call.
        let mounted = unsafe {
            libc::mount(
                source.as_ptr(),
                path.as_ptr(),
                source.as_ptr(),
                0,
                options.as_ptr().cast(),
            )
        };
        if mounted == 0 {
            return Some(Tmpfs(target.to_owned()));
        }
        let err = std::io::Error::last_os_error();
        assert_eq!(err.raw_os_error(), Some(libc::EPERM), "mount failed: {err}");
        eprintln!("skipped: mounting a tmpfs is not permitted here ({err})");
        None
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let path = CString::new(self.0.as_os_str().as_bytes()).unwrap();
        // SAFETY: the path is a NUL-terminated string that outlives the call.
        unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) };
    }
}

/// Every file name in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_full_disk_keeps_the_old_file_and_the_process_carries_on() {
    const BODY: &str = "disk/body";
    let dir = tempfile::tempdir().unwrap();
    let Some(_tmpfs) = Tmpfs::mount(dir.path(), "256k") else {
        return;
    };
    let consul = ConsulAgent::dev();
    consul.kv_put(BODY, "small-1");
    let sources = tempfile::tempdir().unwrap();
    let src = sources.path().join("body.tera");
    write(&src, &format!("{{{{ key(path=\"{BODY}\") }}}}\n"));
    let dest = dir.path().join("out.conf");
    let mut daemon = Daemon::start(
        &[
            &format!("-consul-addr={}", consul.http_addr()),
            &format!("-template={}:{}", src.display(), dest.display()),
        ],
        &[],
    );
    wait_for_file(&dest, "the first value", T, |c| c == "small-1\n");
    let before = std::fs::read(&dest).unwrap();

    // Bigger than the whole tmpfs (Consul takes values up to 512 kB).
    consul.kv_put(BODY, &"x".repeat(300_000));
    wait_until("consul-render to fail the write (or make it)", T, || {
        daemon.assert_running();
        let log = daemon.log();
        log.contains("No space left on device") || log.matches("rendered; written").count() > 1
    });
    let now = std::fs::read(&dest).unwrap();
    assert!(
        now == before,
        "the old file changed: {} bytes starting {:?}",
        now.len(),
        String::from_utf8_lossy(&now[..now.len().min(40)])
    );
    let log = daemon.log();
    let error = log
        .lines()
        .find(|l| l.contains("No space left on device"))
        .unwrap_or_else(|| panic!("no write error logged:\n{log}"));
    assert!(
        error.contains(" ERROR ")
            && error.contains(&format!("could not stage {}", dest.display()))
            && error.contains("the destination keeps its last good contents"),
        "{error}"
    );
    assert_eq!(names(dir.path()), ["out.conf"], "no temp file is left");
    daemon.assert_running();

    consul.kv_put(BODY, "small-2");
    wait_for_file(&dest, "the value that fits", T, |c| c == "small-2\n");
    assert_eq!(names(dir.path()), ["out.conf"]);
    daemon.assert_running();
}
