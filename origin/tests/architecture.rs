//! Architecture invariant from ARCHITECTURE.md: the library's top-level
//! modules import each other without a circle. Read from the source, so a new
//! `use crate::...` that closes a loop fails here with the loop spelled out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level module -> the top-level modules its files name as `crate::x`.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut pending = vec![src.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            if path.extension().is_none_or(|ext| ext != "rs") {
                continue;
            }
            let relative = path.strip_prefix(src).unwrap();
            let first = relative.components().next().unwrap().as_os_str();
            let module = first.to_str().unwrap().trim_end_matches(".rs").to_owned();
            if module == "lib" || module == "main" {
                continue;
            }
            // Comments may name any module (doc links); only code imports.
            let text: String = std::fs::read_to_string(&path)
                .unwrap()
                .lines()
                .filter(|line| !line.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            let targets = graph.entry(module.clone()).or_default();
            targets.extend(crate_references(&text).filter(|target| *target != module));
        }
    }
    graph
}

/// Every `x` in `crate::x` and `crate::{x, y::z}`.
fn crate_references(text: &str) -> impl Iterator<Item = String> + '_ {
    text.match_indices("crate::").flat_map(move |(at, _)| {
        let rest = &text[at + "crate::".len()..];
        let names: Vec<&str> = match rest.strip_prefix('{') {
            Some(group) => group[..group.find('}').unwrap_or(group.len())]
                .split(',')
                .collect(),
            None => vec![rest],
        };
        names
            .into_iter()
            .filter_map(|name| {
                let name = name.trim_start();
                let end = name
                    .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .unwrap_or(name.len());
                (end > 0).then(|| name[..end].to_owned())
            })
            .collect::<Vec<_>>()
    })
}

/// A path that leads from `from` back to itself, if there is one.
fn circle_through(graph: &BTreeMap<String, BTreeSet<String>>, from: &str) -> Option<Vec<String>> {
    let mut stack = vec![vec![from.to_owned()]];
    let mut seen = BTreeSet::new();
    while let Some(path) = stack.pop() {
        let last = path.last().unwrap();
        for next in graph.get(last).into_iter().flatten() {
            if next == from {
                let mut circle = path.clone();
                circle.push(next.clone());
                return Some(circle);
            }
            if graph.contains_key(next) && seen.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push(longer);
            }
        }
    }
    None
}

#[test]
fn library_modules_import_each_other_without_a_circle() {
    let graph = module_graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(graph.contains_key("startup") && graph.contains_key("routes"));
    let circles: Vec<String> = graph
        .keys()
        .filter_map(|module| circle_through(&graph, module))
        .map(|circle| circle.join(" -> "))
        .collect();
    assert!(circles.is_empty(), "import circles: {circles:#?}");
}

#[test]
fn the_reference_scanner_finds_single_and_grouped_imports() {
    let text = "use crate::a::B;\nuse crate::{c, d::E};\nlet x = crate::f(1);";
    let found: BTreeSet<String> = crate_references(text).collect();
    assert_eq!(found, ["a", "c", "d", "f"].map(String::from).into());
    let graph = BTreeMap::from([
        ("a".to_owned(), BTreeSet::from(["b".to_owned()])),
        ("b".to_owned(), BTreeSet::from(["a".to_owned()])),
        ("c".to_owned(), BTreeSet::from(["a".to_owned()])),
    ]);
    assert_eq!(circle_through(&graph, "a").unwrap(), ["a", "b", "a"]);
    assert!(circle_through(&graph, "c").is_none());
}
