//! The system's unprivileged account, for tests that give files an owner:
//! read from `/etc/passwd` and `/etc/group`, so that no test hard-codes ids
//! that differ between distributions.

/// The `nobody` user and the group it is meant to go with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nobody {
    pub uid: u32,
    /// `nogroup` on Debian, `nobody` elsewhere.
    pub group: &'static str,
    pub gid: u32,
}

/// This system's `nobody` and its group; panics if it has neither.
pub fn nobody() -> Nobody {
    let uid = id("/etc/passwd", "nobody").expect("a nobody user in /etc/passwd");
    let (group, gid) = ["nogroup", "nobody"]
        .into_iter()
        .find_map(|name| Some((name, id("/etc/group", name)?)))
        .expect("a nogroup or nobody group in /etc/group");
    Nobody { uid, group, gid }
}

/// The id (third field) of `name` in a passwd-style `file`.
fn id(file: &str, name: &str) -> Option<u32> {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{file}: {e}"));
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next() == Some(name))
            .then(|| fields.nth(1)?.parse().ok())
            .flatten()
    })
}
