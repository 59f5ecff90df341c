//! The crate's layers, as ARCHITECTURE.md draws them: a module imports only
//! modules of its own layer or of the layers below it.
//!
//! 0. `config`, `geo`, `zone`, `wire`, `hash`: the operator's files and the
//!    DNS vocabulary.
//! 1. `health`, `policy`, `dnssec`, `transfer`, `snapshot`: what answers
//!    are made from (the snapshot, built from layer 0) and the health table.
//! 2. `dns`: the data plane.
//! 3. everything else: the control plane, the admin API, metrics, the
//!    fleet, the tools.
//!
//! Reads the sources as text: every `crate::NAME` outside comments and the
//! `#[cfg(test)]` module at the end of a file is an import of `NAME`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const LAYERS: [&[&str]; 3] = [
    &["config", "geo", "zone", "wire", "hash"],
    &["health", "policy", "dnssec", "transfer", "snapshot"],
    &["dns"],
];

/// A top-level module's layer (modules not listed are the top layer).
fn layer(module: &str) -> usize {
    LAYERS
        .iter()
        .position(|names| names.contains(&module))
        .unwrap_or(LAYERS.len())
}

#[test]
fn no_module_imports_a_higher_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(
        files.len() > 20,
        "sources not found under {}",
        src.display()
    );
    let mut wrong = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let first = relative.components().next().unwrap().as_os_str();
        let module = first.to_str().unwrap().trim_end_matches(".rs");
        if module == "main" || module == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        for imported in imports(&text) {
            if imported != module && layer(&imported) > layer(module) {
                wrong.push(format!(
                    "src/{} (layer {}) imports crate::{imported} (layer {})",
                    relative.display(),
                    layer(module),
                    layer(&imported)
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports from a lower layer to a higher one (see ARCHITECTURE.md, Layers):\n{}",
        wrong.join("\n")
    );
}

/// The top-level modules `text` names as `crate::NAME`, or inside a
/// `use crate::{…}` group, outside comments and its tests module.
fn imports(text: &str) -> BTreeSet<String> {
    let code = text
        .split("#[cfg(test)]\nmod tests")
        .next()
        .unwrap_or(text)
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `use crate::{a::X, b, c::{Y, Z}}`: the first name of each
            // top-level item of the group.
            let mut depth = 0;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && (c.is_alphanumeric() || c == '_') => {
                        found.insert(identifier(&group[i..]));
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            found.insert(identifier(rest));
        }
    }
    found.remove("");
    found.remove("self");
    found
}

fn identifier(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}
