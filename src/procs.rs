//! The process table, read from `/proc`: who descends from whom, identified by pid *and* start
//! time. The browser launcher kills Chromium's whole tree with it, the supervisor finds what a
//! run left behind, and the matrix finds the process it is to kill.

/// A process identified by pid *and* start time, so a recycled pid is never killed by mistake.
pub struct Proc {
    pub pid: u32,
    start: u64,
    /// The command line, arguments joined by spaces.
    pub cmdline: String,
}

impl Proc {
    pub fn read(pid: u32) -> Option<Proc> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let (_, start) = parse_stat(&stat)?;
        Some(Proc { pid, start, cmdline: cmdline(pid) })
    }

    /// A zombie counts as gone: it holds no resources, and its reaper is not ours.
    pub fn alive(&self) -> bool {
        match std::fs::read_to_string(format!("/proc/{}/stat", self.pid)) {
            Ok(stat) => parse_stat(&stat).map(|(_, s)| s == self.start).unwrap_or(false) && !is_zombie(&stat),
            Err(_) => false,
        }
    }

    pub fn kill(&self) {
        if self.alive() {
            // SAFETY: kill(2) with a pid we just re-identified; no memory is touched.
            unsafe {
                libc::kill(self.pid as libc::pid_t, libc::SIGKILL);
            }
        }
    }
}

/// `(ppid, starttime)` from `/proc/<pid>/stat`; the command name may contain spaces and
/// parentheses, so fields are counted after the last `)`.
fn parse_stat(stat: &str) -> Option<(u32, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); ppid is field 4, starttime field 22.
    let ppid = fields.get(1)?.parse().ok()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((ppid, start))
}

fn is_zombie(stat: &str) -> bool {
    stat.rfind(')').and_then(|i| stat[i + 1..].split_whitespace().next()).map(|s| s == "Z" || s == "X").unwrap_or(false)
}

/// Every process below `root`, found by walking parent links in `/proc`.
pub fn descendants(root: u32) -> Vec<Proc> {
    let mut parent_of = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
            if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                if let Some((ppid, start)) = parse_stat(&stat) {
                    parent_of.push((pid, ppid, start));
                }
            }
        }
    }
    let mut found = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for &(pid, ppid, start) in &parent_of {
            if ppid == p && !found.iter().any(|f: &Proc| f.pid == pid) {
                found.push(Proc { pid, start, cmdline: cmdline(pid) });
                frontier.push(pid);
            }
        }
    }
    found
}

/// Processes whose parent is `parent` (live ones; zombies included, for their reaper).
pub fn children_of(parent: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            if parse_stat(&stat).is_some_and(|(ppid, _)| ppid == parent) {
                out.push(pid);
            }
        }
    }
    out
}

fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline")).map(|c| String::from_utf8_lossy(&c).replace('\0', " ").trim_end().to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_survive_odd_command_names() {
        let stat = "4242 (chrome (ren) x) S 4000 4242 4242 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 987654 1 1";
        assert_eq!(parse_stat(stat), Some((4000, 987654)));
        assert!(!is_zombie(stat));
        assert!(is_zombie("7 (a) b) Z 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0"));
    }

    #[test]
    fn own_children_are_found_with_their_command_lines() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let me = std::process::id();
        // `spawn` returns once the child has swapped in its new memory, but the kernel writes the
        // new argument area a moment later: until then `/proc/<pid>/cmdline` reads empty. So the
        // child is looked for until a deadline, not once.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let found = descendants(me);
            if found.iter().any(|p| p.pid == child.id() && p.cmdline == "sleep 30") {
                break;
            }
            let seen: Vec<_> = found.iter().filter(|p| p.pid == child.id()).map(|p| p.cmdline.clone()).collect();
            assert!(std::time::Instant::now() < deadline, "sleep child {} not found below {me} (seen as {seen:?})", child.id());
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(children_of(me).contains(&child.id()));
        let _ = child.kill();
        let _ = child.wait();
    }
}
