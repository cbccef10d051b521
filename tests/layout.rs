//! Rules of the source layout that the compiler does not check: a long module says at its top
//! why it is one file (ARCHITECTURE.md, "Layout rules").

use std::path::{Path, PathBuf};

/// Past this many lines a module must say why it is one file.
const LONG: usize = 400;

fn rust_sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn a_module_over_400_lines_says_why_at_its_top() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_sources(&root.join("src"), &mut files);
    assert!(files.len() > 50, "the sources were not found");
    let mut silent = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let lines = text.lines().count();
        let header: String = text.lines().take_while(|l| l.starts_with("//!")).collect::<Vec<_>>().join("\n");
        if lines > LONG && !header.contains("Why one file") {
            silent.push(format!("{} ({lines} lines)", f.strip_prefix(root).unwrap().display()));
        }
    }
    assert!(silent.is_empty(), "modules over {LONG} lines without \"Why one file\" in their top comment: {silent:?}");
}
