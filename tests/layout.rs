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
    for dir in ["src", "crates/shared/src", "crates/refstack/src"] {
        rust_sources(&root.join(dir), &mut files);
    }
    assert!(files.len() > 80, "the sources were not found");
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

/// The driver's top-level modules and the ones each names (`crate::x`), outside comments and
/// test modules. `sut::replies` counts as a module of its own: it is the data the timeline
/// carries, and imports nothing of the driver.
fn module_graph(root: &Path) -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    let mut files = Vec::new();
    rust_sources(&root.join("src"), &mut files);
    let mut graph: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> = Default::default();
    for f in files {
        let rel = f.strip_prefix(root.join("src")).unwrap().to_string_lossy().replace('\\', "/");
        if rel == "main.rs" || rel == "lib.rs" {
            continue;
        }
        let node = if rel == "sut/replies.rs" { "sut::replies".to_string() } else { rel.split('/').next().unwrap().trim_end_matches(".rs").to_string() };
        let text = std::fs::read_to_string(&f).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        let edges = graph.entry(node.clone()).or_default();
        for line in code.lines().map(str::trim).filter(|l| !l.starts_with("//")) {
            for (i, _) in line.match_indices("crate::") {
                let name: String = line[i + 7..].chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
                let target = if name == "sut" && line[i + 7..].starts_with("sut::replies") { "sut::replies".to_string() } else { name };
                if !target.is_empty() && target != node {
                    edges.insert(target);
                }
            }
        }
    }
    graph
}

#[test]
fn the_driver_s_modules_import_each_other_without_a_cycle() {
    let graph = module_graph(Path::new(env!("CARGO_MANIFEST_DIR")));
    assert!(graph.len() > 10, "modules not found: {graph:?}");
    // Depth-first search for a path back to where it started.
    fn back_to(graph: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>, start: &str, at: &str, path: &mut Vec<String>) -> bool {
        for next in graph.get(at).into_iter().flatten() {
            if next == start {
                path.push(next.clone());
                return true;
            }
            if !path.contains(next) {
                path.push(next.clone());
                if back_to(graph, start, next, path) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    for start in graph.keys() {
        let mut path = vec![start.clone()];
        assert!(!back_to(&graph, start, start, &mut path), "import cycle: {}", path.join(" → "));
    }
}
