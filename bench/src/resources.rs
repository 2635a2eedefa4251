//! What a process costs the machine: resident memory from /proc (`VmRSS` in
//! `status`; `Pss` and private pages in `smaps_rollup`) and CPU time, both
//! as `utime + stime` from `/proc/PID/stat` (clock ticks, usually 10 ms
//! each, so only as fine as the number of ticks a figure spans) and from the
//! process's CPU-time clock (`clock_getcpuclockid`: the same kernel
//! accounting, all threads including exited ones, in nanoseconds); and the
//! TCP connections it holds to a port (its sockets in `/proc/PID/fd` matched
//! against `/proc/PID/net/tcp`).

use std::fs;
use std::io;
use std::time::Duration;

/// One reading of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcSample {
    /// User plus system CPU time so far, in clock ticks (/proc/PID/stat).
    pub cpu_ticks: u64,
    /// CPU time so far from the process's CPU-time clock.
    pub cpu: Duration,
    pub rss_kib: u64,
    /// Proportional set size: shared pages divided among their users.
    pub pss_kib: u64,
    /// Private_Clean + Private_Dirty: pages only this process maps.
    pub private_kib: u64,
}

impl ProcSample {
    /// Reads process `pid`.
    pub fn read(pid: u32) -> io::Result<ProcSample> {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
        let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
        let rollup = fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))?;
        let bad = |what: &str| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("/proc/{pid}: no {what}"),
            )
        };
        Ok(ProcSample {
            cpu_ticks: cpu_ticks(&stat).ok_or_else(|| bad("utime/stime in stat"))?,
            cpu: cpu_clock(pid)?,
            rss_kib: kib_field(&status, "VmRSS:").ok_or_else(|| bad("VmRSS"))?,
            pss_kib: kib_field(&rollup, "Pss:").ok_or_else(|| bad("Pss"))?,
            private_kib: kib_field(&rollup, "Private_Clean:")
                .ok_or_else(|| bad("Private_Clean"))?
                + kib_field(&rollup, "Private_Dirty:").ok_or_else(|| bad("Private_Dirty"))?,
        })
    }
}

/// CPU time between two readings of one process: the clock's figure and
/// the /proc/PID/stat one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuSpent {
    pub clock: Duration,
    pub stat: Duration,
}

impl CpuSpent {
    pub fn between(start: &ProcSample, end: &ProcSample) -> CpuSpent {
        CpuSpent {
            clock: end.cpu.saturating_sub(start.cpu),
            stat: ticks_to_duration(end.cpu_ticks.saturating_sub(start.cpu_ticks)),
        }
    }
}

/// Process `pid`'s CPU time from its CPU-time clock. Linux lets any process
/// read the clock of any thread-group leader.
fn cpu_clock(pid: u32) -> io::Result<Duration> {
    let pid =
        libc::pid_t::try_from(pid).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut clock: libc::clockid_t = 0;
    // SAFETY: writes one clockid_t to a local we own.
    let rc = unsafe { libc::clock_getcpuclockid(pid, &mut clock) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    read_clock(clock)
}

/// The CPU time the calling thread has used.
pub fn thread_cpu_time() -> Duration {
    read_clock(libc::CLOCK_THREAD_CPUTIME_ID)
        .unwrap_or_else(|e| panic!("reading this thread's CPU clock: {e}"))
}

fn read_clock(clock: libc::clockid_t) -> io::Result<Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes one timespec to a local we own.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u32::try_from(ts.tv_nsec).unwrap_or(0);
    Ok(Duration::new(secs, nanos))
}

/// The CPU time `ticks` clock ticks stand for.
fn ticks_to_duration(ticks: u64) -> Duration {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = u64::try_from(hz).ok().filter(|&h| h > 0).unwrap_or(100);
    Duration::from_nanos(ticks.saturating_mul(1_000_000_000) / hz)
}

/// `utime + stime` from a /proc/PID/stat line. The command name (field 2)
/// is in parentheses and may hold spaces, so fields are counted after the
/// last `)`: there, field 3 (state) is first, utime (14) is 12th.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// How many established TCP connections process `pid` holds to `port` on
/// any IPv4 address.
pub fn connections_to(pid: u32, port: u16) -> io::Result<usize> {
    let mut inodes = std::collections::BTreeSet::new();
    for entry in fs::read_dir(format!("/proc/{pid}/fd"))? {
        // A descriptor closed while we list them is simply not counted.
        let Ok(target) = fs::read_link(entry?.path()) else {
            continue;
        };
        let target = target.to_string_lossy();
        if let Some(inode) = target
            .strip_prefix("socket:[")
            .and_then(|t| t.strip_suffix(']'))
        {
            inodes.insert(inode.to_string());
        }
    }
    let table = fs::read_to_string(format!("/proc/{pid}/net/tcp"))?;
    Ok(count_established(&table, port, &inodes))
}

/// Rows of a /proc/net/tcp table that are established (`st` 01), go to
/// remote `port`, and belong to one of `inodes`.
fn count_established(table: &str, port: u16, inodes: &std::collections::BTreeSet<String>) -> usize {
    let port = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|row| {
            let f: Vec<&str> = row.split_whitespace().collect();
            f.len() > 9 && f[2].ends_with(&port) && f[3] == "01" && inodes.contains(f[9])
        })
        .count()
}

/// The number in a `Name:   123 kB` line.
fn kib_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cpu_ticks_after_a_command_name_with_spaces() {
        let stat = "42 (a b) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 5 1000 50";
        assert_eq!(cpu_ticks(stat), Some(10));
    }

    #[test]
    fn counts_established_connections_to_a_port_by_inode() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:9C40 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 111 1
   1: 0100007F:9C41 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 222 1
   2: 0100007F:9C42 0100007F:1F90 06 00000000:00000000 00:00000000 00000000     0        0 333 1
   3: 0100007F:9C43 0100007F:1F91 01 00000000:00000000 00:00000000 00000000     0        0 444 1
";
        let mine: std::collections::BTreeSet<String> = ["111", "333", "444"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(count_established(table, 0x1F90, &mine), 1);
    }

    #[test]
    fn counts_this_process_s_connection() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let _client = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        assert_eq!(connections_to(std::process::id(), port).expect("reads"), 1);
    }

    #[test]
    fn reads_kib_fields() {
        let status = "Name:\tx\nVmRSS:\t    1234 kB\nVmSwap:\t0 kB\n";
        assert_eq!(kib_field(status, "VmRSS:"), Some(1234));
        assert_eq!(kib_field(status, "Pss:"), None);
    }

    #[test]
    fn reads_another_process_s_cpu_clock() {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .expect("spawn sh");
        // On a busy machine the loop may get little CPU: wait for some.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut sample = ProcSample::read(child.id());
        while sample
            .as_ref()
            .is_ok_and(|s| s.cpu < Duration::from_millis(20))
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
            sample = ProcSample::read(child.id());
        }
        let _ = child.kill();
        let _ = child.wait();
        let sample = sample.expect("reads the child");
        assert!(sample.cpu >= Duration::from_millis(20), "{sample:?}");
    }

    #[test]
    fn reads_this_process() {
        let sample = ProcSample::read(std::process::id()).expect("own /proc entry");
        assert!(sample.rss_kib > 0);
        assert!(sample.pss_kib > 0);
        assert!(sample.private_kib > 0);
    }
}
