//! Rules of the tree that no compiler checks: within each crate, no two files import each other,
//! directly or round a longer circle (a module that both uses and is used by another belongs in
//! one place, or below both). Reads the sources as text: `crate::` paths and `use crate::{...}`
//! groups, with names the crate root re-exports resolved to the module that defines them.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path (`a::b`, "" for the root) -> file.
fn modules(src: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap().with_extension("");
            let mut parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if matches!(
                parts.last().map(String::as_str),
                Some("lib" | "main" | "mod")
            ) {
                parts.pop();
            }
            out.insert(parts.join("::"), path);
        }
    }
    out
}

/// The code of a file without its tests and comments.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn identifiers(text: &str) -> Vec<&str> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect()
}

/// Names the crate root re-exports (`pub use module::{A, B};`, `pub use module::A;`) -> module.
fn reexports(root: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for statement in root.split(';') {
        let Some(rest) = statement.trim().strip_prefix("pub use ") else {
            continue;
        };
        let rest = rest.trim_start_matches("self::");
        let Some((module, names)) = rest.split_once("::") else {
            continue;
        };
        for name in identifiers(names) {
            out.insert(name.to_owned(), module.to_owned());
        }
    }
    out
}

/// Which modules each module's code names through `crate::`.
fn imports(mods: &BTreeMap<String, PathBuf>) -> BTreeMap<String, BTreeSet<String>> {
    let root = mods.get("").map(|p| code(p)).unwrap_or_default();
    let reexported = reexports(&root);
    let resolve = |name: &str, next: Option<&str>| -> Option<String> {
        if mods.contains_key(name) && !name.is_empty() {
            let nested = next.map(|n| format!("{name}::{n}"));
            return Some(match nested {
                Some(n) if mods.contains_key(&n) => n,
                _ => name.to_owned(),
            });
        }
        reexported.get(name).cloned()
    };
    let mut out = BTreeMap::new();
    for (module, path) in mods {
        if module.is_empty() {
            continue;
        }
        let text = code(path);
        let mut uses = BTreeSet::new();
        for (i, _) in text.match_indices("crate::") {
            let after = &text[i + "crate::".len()..];
            if let Some(group) = after.strip_prefix('{') {
                let group = &group[..group.find('}').unwrap_or(group.len())];
                for item in group.split(',') {
                    let words = identifiers(item);
                    if let Some(first) = words.first() {
                        uses.extend(resolve(first, words.get(1).copied()));
                    }
                }
            } else {
                let words = identifiers(after);
                if let Some(first) = words.first() {
                    uses.extend(resolve(first, words.get(1).copied()));
                }
            }
        }
        // A module using itself, or its parent (which declares it), is no circle.
        uses.retain(|used| used != module && !module.starts_with(&format!("{used}::")));
        out.insert(module.clone(), uses);
    }
    out
}

/// One circle of imports, if any.
fn circle(imports: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        at: &str,
        imports: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|m| m == at) {
            let mut found = path[start..].to_vec();
            found.push(at.to_owned());
            return Some(found);
        }
        if !done.insert(at.to_owned()) {
            return None;
        }
        path.push(at.to_owned());
        for next in imports.get(at).into_iter().flatten() {
            if let Some(found) = visit(next, imports, path, done) {
                return Some(found);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    for module in imports.keys() {
        if let Some(found) = visit(module, imports, &mut Vec::new(), &mut done) {
            return Some(found);
        }
    }
    None
}

fn crates() -> Vec<PathBuf> {
    let root = support::repo_root();
    let mut out = Vec::new();
    for folder in ["crates", "tools"] {
        for entry in std::fs::read_dir(root.join(folder)).unwrap() {
            let dir = entry.unwrap().path();
            if dir.join("src").is_dir() {
                out.push(dir);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn no_file_imports_a_file_that_imports_it() {
    let crates = crates();
    assert!(crates.len() >= 15, "found only {crates:?}");
    let mut circles = Vec::new();
    for dir in &crates {
        let mods = modules(&dir.join("src"));
        if let Some(found) = circle(&imports(&mods)) {
            circles.push(format!("{}: {}", dir.display(), found.join(" -> ")));
        }
    }
    assert!(
        circles.is_empty(),
        "import circles:\n{}",
        circles.join("\n")
    );
}

/// The check finds a circle when there is one.
#[test]
fn a_circle_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::write(src.join("lib.rs"), "mod a;\nmod b;\npub use b::Thing;\n").unwrap();
    std::fs::write(src.join("a.rs"), "use crate::Thing;\npub struct A;\n").unwrap();
    std::fs::write(src.join("b.rs"), "use crate::{a::A};\npub struct Thing;\n").unwrap();
    let found = circle(&imports(&modules(src)));
    assert_eq!(
        found.as_deref(),
        Some(&["a".to_owned(), "b".to_owned(), "a".to_owned()][..])
    );
    std::fs::write(src.join("b.rs"), "pub struct Thing;\n").unwrap();
    assert_eq!(circle(&imports(&modules(src))), None);
}
