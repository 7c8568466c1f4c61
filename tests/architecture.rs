//! The layout shows the architecture: within every crate of the workspace, the arrows between source
//! files run one way. A file that uses an item of another file depends on it; a loop of such
//! dependencies (`a.rs` uses `b.rs`, which uses `a.rs`, directly or round a longer way) fails this test,
//! naming the files and the paths that close it.
//!
//! Every path a file writes counts, in `use` items and in code (`child::run()` as much as `use
//! crate::child::run`). Names are followed to the file that defines them: `crate::audio::AudioSlot`, re-exported by
//! `audio/mod.rs` from `audio/stream.rs`, is a dependency on `stream.rs`, not on the module that only
//! passes it on, and a `pub use` is no arrow from the module that writes it. Declaring a child module
//! (`mod stream;`) is no dependency either, and tests (`#[cfg(test)]` modules) may use what they test.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// A module's path from its crate root (`["audio", "stream"]`).
type ModulePath = Vec<String>;

/// What one module holds, as far as finding where a name comes from needs.
#[derive(Default)]
struct Module {
    /// The file the module is written in (inline modules share their parent's).
    file: PathBuf,
    /// Names of the items defined here.
    defined: BTreeSet<String>,
    /// Child modules, by name.
    children: BTreeSet<String>,
    /// Names brought in by `use`, and the absolute path each stands for.
    imported: BTreeMap<String, ModulePath>,
    /// Modules whose every name is brought in (`use x::*`).
    globs: Vec<ModulePath>,
}

/// One crate's modules, and every path its files name.
#[derive(Default)]
struct Crate {
    modules: HashMap<ModulePath, Module>,
    /// (module the path is written in, the path as written, relative or absolute).
    uses: Vec<(ModulePath, ModulePath)>,
}

impl Crate {
    fn read(root: &Path) -> Crate {
        let mut krate = Crate::default();
        krate.read_file(root, Vec::new(), root.parent().expect("a crate root is in a folder").to_owned());
        krate
    }

    /// Reads the module at `module` from `file`; its file children are looked for in `folder`.
    fn read_file(&mut self, file: &Path, module: ModulePath, folder: PathBuf) {
        let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let syntax = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        self.read_items(file, &syntax.items, module, &folder);
        let mut paths = PathCollector { module: Vec::new(), found: Vec::new() };
        paths.visit_file(&syntax);
        let base = self.modules_of_file(file);
        for (inner, path) in paths.found {
            let mut at = base.clone();
            at.extend(inner);
            self.uses.push((at, path));
        }
    }

    /// The module a file starts with (the shortest path among those written in it).
    fn modules_of_file(&self, file: &Path) -> ModulePath {
        self.modules
            .iter()
            .filter(|(_, m)| m.file == file)
            .map(|(path, _)| path.clone())
            .min_by_key(Vec::len)
            .unwrap_or_default()
    }

    fn read_items(&mut self, file: &Path, items: &[syn::Item], module: ModulePath, folder: &Path) {
        let entry = self.modules.entry(module.clone()).or_default();
        entry.file = file.to_owned();
        for item in items {
            let name = match item {
                syn::Item::Const(i) => Some(i.ident.to_string()),
                syn::Item::Enum(i) => Some(i.ident.to_string()),
                syn::Item::Fn(i) => Some(i.sig.ident.to_string()),
                syn::Item::Static(i) => Some(i.ident.to_string()),
                syn::Item::Struct(i) => Some(i.ident.to_string()),
                syn::Item::Trait(i) => Some(i.ident.to_string()),
                syn::Item::Type(i) => Some(i.ident.to_string()),
                syn::Item::Union(i) => Some(i.ident.to_string()),
                syn::Item::Macro(i) => i.ident.as_ref().map(ToString::to_string),
                _ => None,
            };
            if let Some(name) = name {
                self.modules.get_mut(&module).expect("entered above").defined.insert(name);
            }
            match item {
                syn::Item::Use(used) => {
                    let mut flat = Vec::new();
                    flatten(&used.tree, Vec::new(), &mut flat);
                    let here = self.modules.get_mut(&module).expect("entered above");
                    for (name, path) in flat {
                        match name {
                            Some(name) => {
                                here.imported.insert(name, path);
                            }
                            None => here.globs.push(path),
                        }
                    }
                }
                syn::Item::Mod(child) if is_test_only(&child.attrs) => {}
                syn::Item::Mod(child) => {
                    let name = child.ident.to_string();
                    self.modules.get_mut(&module).expect("entered above").children.insert(name.clone());
                    let mut child_path = module.clone();
                    child_path.push(name.clone());
                    match &child.content {
                        Some((_, items)) => self.read_items(file, items, child_path, &folder.join(&name)),
                        None => {
                            let (child_file, child_folder) = if folder.join(format!("{name}.rs")).exists() {
                                (folder.join(format!("{name}.rs")), folder.join(&name))
                            } else {
                                (folder.join(&name).join("mod.rs"), folder.join(&name))
                            };
                            self.read_file(&child_file, child_path, child_folder);
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// Makes a path as written in `module` absolute; `None` for paths into other crates.
    fn absolute(&self, module: &ModulePath, path: &ModulePath) -> Option<ModulePath> {
        let mut at = module.clone();
        let mut rest = path.as_slice();
        match rest.first().map(String::as_str) {
            Some("crate") => {
                at.clear();
                rest = &rest[1..];
            }
            Some("self") => rest = &rest[1..],
            Some("super") => {
                while rest.first().map(String::as_str) == Some("super") {
                    at.pop();
                    rest = &rest[1..];
                }
            }
            Some(first) => {
                let here = self.modules.get(module)?;
                let local = here.children.contains(first) || here.defined.contains(first);
                if !local {
                    // A name brought in by `use` is followed there; anything else is another crate's.
                    let imported = here.imported.get(first)?;
                    let mut joined = imported.clone();
                    joined.extend(rest[1..].iter().cloned());
                    return self.absolute(module, &joined);
                }
            }
            None => return None,
        }
        at.extend(rest.iter().cloned());
        Some(at)
    }

    /// The file that defines what an absolute path names (following re-exports), at most `depth` hops.
    fn defining_file(&self, path: &[String], depth: u8) -> Option<PathBuf> {
        let mut module: ModulePath = Vec::new();
        for (index, segment) in path.iter().enumerate() {
            let here = self.modules.get(&module)?;
            if here.children.contains(segment) {
                module.push(segment.clone());
                continue;
            }
            if here.defined.contains(segment) || depth == 0 {
                return Some(here.file.clone());
            }
            if let Some(target) = here.imported.get(segment) {
                let mut next = self.absolute(&module, target)?;
                next.extend(path[index + 1..].iter().cloned());
                return self.defining_file(&next, depth - 1).or_else(|| Some(here.file.clone()));
            }
            for glob in &here.globs {
                let Some(mut next) = self.absolute(&module, glob) else { continue };
                next.extend(path[index..].iter().cloned());
                if let Some(file) = self.defining_file(&next, depth - 1) {
                    return Some(file);
                }
            }
            return Some(here.file.clone());
        }
        self.modules.get(&module).map(|m| m.file.clone())
    }

    /// Every dependency between two files of the crate, with a path that makes it.
    fn dependencies(&self) -> BTreeMap<(PathBuf, PathBuf), String> {
        let mut edges = BTreeMap::new();
        for (module, path) in &self.uses {
            let Some(from) = self.modules.get(module).map(|m| m.file.clone()) else { continue };
            let Some(absolute) = self.absolute(module, path) else { continue };
            let Some(to) = self.defining_file(&absolute, 8) else { continue };
            if from != to {
                edges.entry((from, to)).or_insert_with(|| path.join("::"));
            }
        }
        edges
    }
}

/// `#[cfg(test)]`: compiled for the crate's own tests only.
fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|attr| {
        attr.path().is_ident("cfg") && attr.meta.require_list().is_ok_and(|list| list.tokens.to_string() == "test")
    })
}

/// Turns a use tree into (name it binds, or `None` for a glob; the full path).
fn flatten(tree: &syn::UseTree, prefix: ModulePath, out: &mut Vec<(Option<String>, ModulePath)>) {
    let extend = |name: String| {
        let mut path = prefix.clone();
        path.push(name);
        path
    };
    match tree {
        syn::UseTree::Path(p) => flatten(&p.tree, extend(p.ident.to_string()), out),
        syn::UseTree::Name(n) if n.ident == "self" => {
            if let Some(last) = prefix.last() {
                out.push((Some(last.clone()), prefix.clone()));
            }
        }
        syn::UseTree::Name(n) => out.push((Some(n.ident.to_string()), extend(n.ident.to_string()))),
        syn::UseTree::Rename(r) => out.push((Some(r.rename.to_string()), extend(r.ident.to_string()))),
        syn::UseTree::Glob(_) => out.push((None, prefix)),
        syn::UseTree::Group(g) => g.items.iter().for_each(|item| flatten(item, prefix.clone(), out)),
    }
}

/// Collects the paths a file names (in `use` items and in code), with the inline module they are in.
struct PathCollector {
    module: ModulePath,
    found: Vec<(ModulePath, ModulePath)>,
}

impl<'ast> Visit<'ast> for PathCollector {
    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        if is_test_only(&item.attrs) {
            return;
        }
        // A file module's own items are read when its file is; only inline modules nest here.
        if let Some((_, items)) = &item.content {
            self.module.push(item.ident.to_string());
            for inner in items {
                self.visit_item(inner);
            }
            self.module.pop();
        }
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        // A re-export only passes a name on (its users are followed to where it is defined); it is no
        // arrow from the module that passes it.
        if !matches!(item.vis, syn::Visibility::Inherited) {
            return;
        }
        let mut flat = Vec::new();
        flatten(&item.tree, Vec::new(), &mut flat);
        for (_, path) in flat {
            self.found.push((self.module.clone(), path));
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: ModulePath = path.segments.iter().map(|s| s.ident.to_string()).collect();
        // Paths into other crates (`std::…`, `egui::…`) are dropped when they are made absolute.
        if segments.len() > 1 {
            self.found.push((self.module.clone(), segments));
        }
        syn::visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        // Paths inside macro calls (`format!`, `assert!`) are tokens; those that name this crate count.
        let tokens: Vec<String> = mac.tokens.clone().into_iter().map(|t| t.to_string()).collect();
        let text = tokens.join(" ");
        for start in ["crate", "super"] {
            for (at, _) in text.match_indices(&format!("{start} : :")) {
                let path: ModulePath = text[at..]
                    .split(" : : ")
                    .map(|part| part.split_whitespace().next().unwrap_or("").to_owned())
                    .take_while(|part| part.chars().all(|c| c.is_alphanumeric() || c == '_') && !part.is_empty())
                    .collect();
                if path.len() > 1 {
                    self.found.push((self.module.clone(), path));
                }
            }
        }
        syn::visit::visit_macro(self, mac);
    }
}

/// Loops in a graph: its strongly connected components of more than one node (Tarjan).
fn loops(edges: &BTreeMap<(PathBuf, PathBuf), String>) -> Vec<Vec<PathBuf>> {
    let mut next: BTreeMap<&PathBuf, Vec<&PathBuf>> = BTreeMap::new();
    for (from, to) in edges.keys() {
        next.entry(from).or_default().push(to);
        next.entry(to).or_default();
    }
    struct Search<'a> {
        next: &'a BTreeMap<&'a PathBuf, Vec<&'a PathBuf>>,
        index: HashMap<&'a PathBuf, usize>,
        low: HashMap<&'a PathBuf, usize>,
        stack: Vec<&'a PathBuf>,
        on_stack: BTreeSet<&'a PathBuf>,
        found: Vec<Vec<PathBuf>>,
    }
    impl<'a> Search<'a> {
        fn visit(&mut self, node: &'a PathBuf) {
            let number = self.index.len();
            self.index.insert(node, number);
            self.low.insert(node, number);
            self.stack.push(node);
            self.on_stack.insert(node);
            for &to in &self.next[node] {
                if !self.index.contains_key(to) {
                    self.visit(to);
                    let low = self.low[node].min(self.low[to]);
                    self.low.insert(node, low);
                } else if self.on_stack.contains(to) {
                    let low = self.low[node].min(self.index[to]);
                    self.low.insert(node, low);
                }
            }
            if self.low[node] == self.index[node] {
                let mut component = Vec::new();
                while let Some(top) = self.stack.pop() {
                    self.on_stack.remove(top);
                    component.push(top.clone());
                    if top == node {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut search = Search {
        next: &next,
        index: HashMap::new(),
        low: HashMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for node in next.keys() {
        if !search.index.contains_key(node) {
            search.visit(node);
        }
    }
    search.found
}

/// Every crate root of the workspace: the app's library and binary, and each member's.
fn crate_roots(workspace: &Path) -> Vec<PathBuf> {
    let mut folders = vec![workspace.join("src")];
    let members = std::fs::read_dir(workspace.join("crates")).expect("the workspace has a crates folder");
    folders.extend(members.filter_map(Result::ok).map(|entry| entry.path().join("src")));
    folders
        .iter()
        .flat_map(|folder| [folder.join("lib.rs"), folder.join("main.rs")])
        .filter(|root| root.exists())
        .collect()
}

/// Describes each loop: its files, and the path by which each file uses the next one inside the loop.
fn describe(workspace: &Path, loops: &[Vec<PathBuf>], edges: &BTreeMap<(PathBuf, PathBuf), String>) -> String {
    let short = |path: &PathBuf| path.strip_prefix(workspace).unwrap_or(path).display().to_string();
    let mut text = String::new();
    for files in loops {
        text.push_str(&format!("a loop between {}:\n", files.iter().map(short).collect::<Vec<_>>().join(", ")));
        for ((from, to), path) in edges {
            if files.contains(from) && files.contains(to) {
                text.push_str(&format!("    {} -> {} (uses {path})\n", short(from), short(to)));
            }
        }
    }
    text
}

#[test]
fn no_loop_of_imports_between_the_files_of_any_crate() {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let roots = crate_roots(&workspace);
    assert!(roots.len() >= 8, "the workspace's crates were not all found: {roots:?}");
    let mut report = String::new();
    for root in roots {
        let krate = Crate::read(&root);
        let edges = krate.dependencies();
        report.push_str(&describe(&workspace, &loops(&edges), &edges));
    }
    assert!(report.is_empty(), "arrows between files must run one way:\n{report}");
}

#[test]
fn a_loop_made_on_purpose_is_found_and_a_re_export_is_followed() {
    let folder = tempfile::tempdir().expect("a temporary folder");
    let write = |name: &str, text: &str| {
        let path = folder.path().join(name);
        std::fs::create_dir_all(path.parent().expect("in the folder")).expect("a folder");
        std::fs::write(path, text).expect("a file");
    };
    // A parent calling into its child (`d::run()`, no `use`) while the child uses the parent's item is a
    // loop too.
    write(
        "lib.rs",
        "mod a; mod b; mod c; mod d; pub use c::Shared; pub struct Root; fn go() { d::run() } #[cfg(test)] mod tests;",
    );
    write("d.rs", "pub fn run() -> crate::Root { super::Root }");
    // Tests may use whatever they test.
    write("tests.rs", "use crate::a::Ay; fn t() { crate::b::Bee; }");
    write("a.rs", "use crate::b::Bee; pub struct Ay;");
    write("b.rs", "pub struct Bee; fn f() -> crate::a::Ay { crate::a::Ay }");
    // `c` uses what `lib.rs` re-exports from itself: no loop with `lib.rs`.
    write("c/mod.rs", "mod inner; pub struct Shared; fn g() -> crate::Shared { super::Shared }");
    write("c/inner.rs", "use super::Shared;");
    let krate = Crate::read(&folder.path().join("lib.rs"));
    let edges = krate.dependencies();
    let found = loops(&edges);
    let names: Vec<Vec<String>> = found
        .iter()
        .map(|files| files.iter().map(|f| f.strip_prefix(folder.path()).unwrap().display().to_string()).collect())
        .collect();
    let expected = vec![vec!["a.rs".to_owned(), "b.rs".to_owned()], vec!["d.rs".to_owned(), "lib.rs".to_owned()]];
    let mut names = names;
    names.sort();
    assert_eq!(names, expected, "{edges:?}");
    assert!(edges.contains_key(&(folder.path().join("c/inner.rs"), folder.path().join("c/mod.rs"))));
    // `lib.rs` passes `c`'s item on; `c` naming it through the crate root is no arrow to `lib.rs`.
    assert!(!edges.contains_key(&(folder.path().join("c/mod.rs"), folder.path().join("lib.rs"))), "{edges:?}");
}

#[test]
fn architecture_md_names_every_source_file() {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let map = std::fs::read_to_string(workspace.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md is readable");
    let mut unnamed = BTreeSet::new();
    for root in crate_roots(&workspace) {
        for module in Crate::read(&root).modules.values() {
            let file = module.file.strip_prefix(&workspace).unwrap_or(&module.file).display().to_string();
            if !map.contains(&format!("`{file}`")) {
                unnamed.insert(file);
            }
        }
    }
    assert!(unnamed.is_empty(), "ARCHITECTURE.md says nothing of {unnamed:?}");
}
