//! What the end-to-end tests share: finding a run's processes and listing its files.
//!
//! Where tests put the artifacts of the runs they start: under cargo's `CARGO_TARGET_TMPDIR`
//! (in the build directory), not `$TMPDIR`. A test removes its directory when it passes; one
//! that fails keeps it there for a person to read, and `$TMPDIR` stays clean for the leak checks
//! below, which look there for what a run left behind.
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

/// What a run supervised by `pid` may leave outside its processes: its network namespace
/// (`helix-e2e-<pid>`) and its temp root (`$TMPDIR/helix-e2e-<pid>-*`, which holds unredacted
/// logs and login tokens while the run lives).
pub fn leftovers_of(pid: u32) -> Vec<String> {
    let mut out = Vec::new();
    let ns = Path::new("/var/run/netns").join(format!("helix-e2e-{pid}"));
    if ns.exists() {
        out.push(format!("namespace {}", ns.display()));
    }
    let prefix = format!("helix-e2e-{pid}-");
    for e in std::fs::read_dir(std::env::temp_dir()).into_iter().flatten().flatten() {
        if e.file_name().to_string_lossy().starts_with(&prefix) {
            out.push(format!("temp dir {}", e.path().display()));
        }
    }
    out
}

/// Whether the process's environment has `key` set.
pub fn environ_has(pid: u32, key: &str) -> bool {
    let prefix = format!("{key}=");
    std::fs::read(format!("/proc/{pid}/environ")).map(|env| env.split(|b| *b == 0).any(|kv| kv.starts_with(prefix.as_bytes()))).unwrap_or(false)
}

/// The process's executable name (`/proc/<pid>/comm`).
pub fn exe_name(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).ok().map(|s| s.trim().to_string())
}

/// Temp directories and namespaces of this project that exist now (a test compares before and
/// after to catch its own leaks).
pub fn project_leftovers() -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    for e in std::fs::read_dir(std::env::temp_dir()).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("helix-e2e-") {
            out.insert(format!("temp dir {}", e.path().display()));
        }
    }
    for e in std::fs::read_dir("/var/run/netns").into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("helix-e2e-") && name != "helix-e2e-docker" {
            out.insert(format!("namespace {name}"));
        }
    }
    out
}

/// The seed of a test's run: `HELIX_E2E_TEST_SEED` when set (to replay a CI failure), otherwise
/// a fresh one, printed — a clean stand-in must pass with any seed, so none is pinned.
pub fn seed() -> String {
    let seed = std::env::var("HELIX_E2E_TEST_SEED").ok().unwrap_or_else(|| {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
        (t ^ ((std::process::id() as u64) << 32)).to_string()
    });
    eprintln!("seed {seed} (HELIX_E2E_TEST_SEED={seed} runs it again)");
    seed
}

/// Every live process below `root` (by parent links in `/proc`), with its command line.
/// Chromium's helpers overwrite their environment with their title, so a mark in the
/// environment finds only the browser itself; the process tree finds them all.
pub fn descendants(root: u32) -> Vec<(u32, String)> {
    let mut procs = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else { continue };
        let mut f = rest.split_whitespace();
        let state = f.next().unwrap_or("");
        let Some(ppid) = f.next().and_then(|p| p.parse::<u32>().ok()) else { continue };
        if state != "Z" {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).map(|c| String::from_utf8_lossy(&c).replace('\0', " ")).unwrap_or_default();
            procs.push((pid, ppid, cmd));
        }
    }
    let mut out: Vec<(u32, String)> = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for (pid, ppid, cmd) in &procs {
            if *ppid == p && !out.iter().any(|(o, _)| o == pid) {
                out.push((*pid, cmd.clone()));
                frontier.push(*pid);
            }
        }
    }
    out
}

/// Make this test process the reaper of every orphan its runs leave: a process a run leaks
/// then shows up as a child of the test (see [`orphans`]), whatever its environment says.
pub fn become_subreaper() {
    // SAFETY: prctl on this process only.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
}

/// Live processes below this test process other than `except` and its descendants: with
/// [`become_subreaper`], what runs left behind.
pub fn orphans(except: &[u32]) -> Vec<(u32, String)> {
    let mut keep: Vec<u32> = except.to_vec();
    for e in except {
        keep.extend(descendants(*e).into_iter().map(|(p, _)| p));
    }
    descendants(std::process::id()).into_iter().filter(|(p, _)| !keep.contains(p)).collect()
}

/// What a run left behind, against a snapshot taken before it (`project_leftovers()`): processes
/// re-parented to this test (call [`become_subreaper`] before the run), and new temp dirs or
/// namespaces of the project other than `except` (the test's own artifact directories). Waits up
/// to 5 s for a run's last processes to go.
pub fn leaks_since(before: &std::collections::BTreeSet<String>, except: &[&Path]) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let mut found: Vec<String> = orphans(&[]).into_iter().map(|(pid, cmd)| format!("process {pid}: {cmd}")).collect();
        found.extend(project_leftovers().difference(before).filter(|l| !except.iter().any(|e| l.ends_with(&e.display().to_string()))).cloned());
        if found.is_empty() || std::time::Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// One step of a test peer's side of the viewer's signalling over moonlight-web's socket: offer
/// when negotiation starts, answer the server's renegotiation offer, apply its answer and its
/// candidates. Replies go to `out` as socket text.
pub async fn peer_signal(pc: &webrtc::peer_connection::RTCPeerConnection, v: &serde_json::Value, out: &tokio::sync::mpsc::UnboundedSender<String>) {
    use serde_json::json;
    use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
    if *v == json!({"StageStarting": {"stage": "WebRTC Peer Negotiation"}}) {
        let offer = pc.create_offer(None).await.unwrap();
        pc.set_local_description(offer.clone()).await.unwrap();
        let _ = out.send(json!({"Signaling": {"Description": {"ty": "offer", "sdp": offer.sdp}}}).to_string());
    } else if let Some(d) = v.pointer("/Signaling/Description") {
        let sdp = d["sdp"].as_str().unwrap().to_owned();
        if d["ty"] == "answer" {
            pc.set_remote_description(RTCSessionDescription::answer(sdp).unwrap()).await.unwrap();
        } else {
            pc.set_remote_description(RTCSessionDescription::offer(sdp).unwrap()).await.unwrap();
            let answer = pc.create_answer(None).await.unwrap();
            pc.set_local_description(answer.clone()).await.unwrap();
            let _ = out.send(json!({"Signaling": {"Description": {"ty": "answer", "sdp": answer.sdp}}}).to_string());
        }
    } else if let Some(c) = v.pointer("/Signaling/AddIceCandidate") {
        if let Some(c) = helix_e2e::refstack::streamer::rtc::parse_candidate(c) {
            let _ = pc.add_ice_candidate(c).await;
        }
    }
}
