//! What the end-to-end tests share: finding a run's processes and listing its files.
#![allow(dead_code)] // each test crate uses its own part

use std::path::{Path, PathBuf};

/// Every process a run starts inherits this variable (Chromium, the stand-in, streamers), so a
/// leak check sees only that run's processes, not those of anything else on the machine.
pub const MARK: &str = "HELIX_E2E_TEST_MARK";

/// Live processes whose environment holds `MARK=<mark>`, with their command lines.
pub fn marked_processes(mark: &str) -> Vec<(u32, String)> {
    let needle = format!("{MARK}={mark}");
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else { continue };
        if !env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()) {
            continue;
        }
        if std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default().contains(") Z ") {
            continue;
        }
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).map(|c| String::from_utf8_lossy(&c).replace('\0', " ")).unwrap_or_default();
        out.push((pid, cmd));
    }
    out
}

/// Every file below `dir`, recursively.
pub fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(all_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}
