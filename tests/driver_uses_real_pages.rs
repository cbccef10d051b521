//! The driver may use only what the real Helix pages expose: their visible controls, their
//! `<video>`, their network traffic. A hook that only the stand-in's viewer has (its class
//! names, its script's globals) would make a run against the stand-in pass where one against
//! real Helix cannot act at all. This test reads the driver's sources and refuses such names.

use std::path::Path;

/// Names only the stand-in's viewer and pages define (crates/refstack/src/helix/*.js, *.html, *.css).
const STAND_IN_ONLY: &[&str] = &["HelixStreamViewer", "HelixAccount", "helixViewer", "hv-", "hx-", "helix-boot"];

/// Everything but the reference stack itself.
const DRIVER_DIRS: &[&str] = &["src/browser", "src/scenario", "src/verdict", "src/sut", "src/report", "src/frames", "src/watch"];

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs" || x == "js") {
            out.push(p);
        }
    }
}

#[test]
fn the_driver_uses_no_hook_of_the_stand_in_viewer() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for d in DRIVER_DIRS {
        sources(&root.join(d), &mut files);
    }
    assert!(files.len() > 20, "the driver's sources were not found: {files:?}");
    let mut found = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in text.lines().enumerate() {
            for hook in STAND_IN_ONLY {
                if line.contains(hook) {
                    found.push(format!("{}:{}: {hook}", f.strip_prefix(root).unwrap().display(), n + 1));
                }
            }
        }
    }
    assert!(found.is_empty(), "the driver leans on the stand-in's page:\n{}", found.join("\n"));
}

/// The stand-in's own switchboard (`refstack::faults::CONTROL_FILE`, which turns faults on while
/// it runs) is for tests and demonstrations: a watch or a run that wrote it would be naming the
/// failures it caused itself.
#[test]
fn the_driver_never_switches_the_stand_ins_faults_itself() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for d in DRIVER_DIRS {
        sources(&root.join(d), &mut files);
    }
    let found: Vec<String> = files
        .iter()
        .filter(|f| std::fs::read_to_string(f).unwrap().lines().any(|l| l.contains("CONTROL_FILE") || l.contains("live-faults") || l.contains("LiveFaults")))
        .map(|f| f.strip_prefix(root).unwrap().display().to_string())
        .collect();
    assert!(found.is_empty(), "the driver names the stand-in's fault control: {found:?}");
}
