//! The module map's two rules (the doc comment of `src/lib.rs`), checked on
//! the source text so that breaking one fails `cargo test` instead of waiting
//! for a reviewer to notice:
//!
//! - no module imports one that imports it back;
//! - each crate that touches the world or parses input lives in one module.
//!
//! The compiler accepts circles between modules of one crate and lets any
//! module name any dependency, so neither rule can be left to it. What is read
//! here is text, not a parsed syntax tree: this file uses `std` only, to keep
//! the check cheap to build and free of a parser's versions. The price is a few
//! blind spots, named where they are.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// One `.rs` file of `src/`, reduced to what the rules are about.
struct Source {
    /// `run::lease` for `src/run/lease.rs`, `run` for `src/run/mod.rs`; empty
    /// for the crate roots (`lib.rs`, `main.rs`), which are no module of the map.
    module: String,
    /// For the messages: `src/run/lease.rs`.
    file: String,
    /// The text with its test-only tail and its comments blanked out. Line
    /// numbers stay those of the file, so that a message can point into it.
    code: String,
}

impl Source {
    fn new(module: &str, file: &str, text: &str) -> Source {
        Source {
            module: module.to_string(),
            file: file.to_string(),
            code: strip_comments(&without_tests(text)),
        }
    }

    /// The 1-based line of a byte offset into `code`.
    fn line_of(&self, offset: usize) -> usize {
        self.code[..offset].matches('\n').count() + 1
    }
}

/// Where one module names another: what a message shows for an edge.
#[derive(Clone)]
struct Reference {
    file: String,
    line: usize,
    path: String,
}

/// Module → the modules it references → the first place it does.
type Graph = BTreeMap<String, BTreeMap<String, Reference>>;

/// Test modules may reach anywhere (that is what `use super::*` is for), so a
/// test that names its module's user is no circle of the design.
const TEST_ONLY_FILES: [&str; 2] = ["tests", "fakes"];

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let sources = read_src();
    let modules: Vec<Source> = sources
        .into_iter()
        .filter(|s| !s.module.is_empty())
        .collect();
    let graph = module_graph(&modules);

    // A scanner that finds nothing would pass this test forever: if src/ has
    // references, some must show up.
    let edges: usize = graph.values().map(BTreeMap::len).sum();
    assert!(
        edges > 0,
        "no module references another: is the scanner blind? {graph:?}",
        graph = graph.keys()
    );

    let circles = circles(&graph);
    assert!(
        circles.is_empty(),
        "modules that import each other:\n{}",
        describe(&graph, &circles)
    );
}

#[test]
fn each_world_facing_crate_lives_in_one_module() {
    // The list of `src/lib.rs`, with the crates' names as Rust spells them
    // (`gcloud-pubsub` is `gcloud_pubsub`). `build.rs` uses prost-build, which
    // is not in src/ and not on the list.
    let owners = [
        ("clap", "config::cli"),
        ("prost", "event"),
        ("gcloud_pubsub", "pubsub::google"),
        ("gcloud_gax", "pubsub::google"),
        ("gcloud_googleapis", "pubsub::google"),
        ("mysql_async", "store::mysql"),
        ("tokio_postgres", "store::postgres"),
        ("tokio_postgres_rustls", "store::postgres"),
        ("rustls", "store::postgres"),
        ("webpki_roots", "store::postgres"),
        ("serde_json", "outcome"),
        ("toml", "config::map"),
        ("ureq", "ops::metrics"),
        ("jiff", "timestamp"),
        ("env_logger", "logging"),
    ];
    // The crate roots count too: main.rs naming serde_json would break the
    // rule as surely as a module doing it.
    let sources = read_src();

    let mut strays = Vec::new();
    for (krate, owner) in owners {
        let mut found_in_owner = false;
        for source in &sources {
            let Some(offset) = first_mention(&source.code, krate) else {
                continue;
            };
            // A submodule of the owner is still the owner: splitting a file
            // must not break the rule.
            if source.module == owner || source.module.starts_with(&format!("{owner}::")) {
                found_in_owner = true;
            } else {
                strays.push(format!(
                    "{krate} belongs in {owner}, but {file}:{line} names it",
                    file = source.file,
                    line = source.line_of(offset),
                ));
            }
        }
        // If the owner stopped naming its crate, the pair is stale (or the
        // scanner is blind): either way the map in lib.rs needs a look.
        assert!(
            found_in_owner,
            "{owner} no longer names {krate}: is src/lib.rs's list out of date?"
        );
    }
    assert!(
        strays.is_empty(),
        "crates outside their module:\n{}",
        strays.join("\n")
    );
}

#[test]
fn a_circle_is_found() {
    // Each circle is written the way it could creep into src/: a child that
    // reaches its parent through `super`, and a module whose nested, renamed
    // import reaches one that names it back by an inline `crate::` path.
    let modules = [
        Source::new(
            "run",
            "src/run/mod.rs",
            "mod lease;\nuse crate::store::Store;\nfn go() { lease::settle(); }\n",
        ),
        Source::new(
            "run::lease",
            "src/run/lease.rs",
            "use super::Round;\npub fn settle() {}\n",
        ),
        Source::new("store", "src/store/mod.rs", "pub trait Store {}\n"),
        Source::new("a", "src/a.rs", "use crate::b::{self, c::{D, e as f}};\n"),
        Source::new("b", "src/b/mod.rs", "pub mod c;\n"),
        Source::new(
            "b::c",
            "src/b/c.rs",
            "pub struct D;\nfn g() { crate::a::h() }\n",
        ),
    ];
    let graph = module_graph(&modules);
    assert_eq!(
        circles(&graph),
        [vec!["a", "b::c"], vec!["run", "run::lease"]],
        "the graph: {graph:?}",
        graph = graph
            .iter()
            .map(|(m, to)| (m, to.keys().collect::<Vec<_>>()))
            .collect::<Vec<_>>(),
    );
    assert!(describe(&graph, &circles(&graph)).contains("src/run/lease.rs:1 `super::Round`"));

    // The same references from a comment or a test module are no circle: the
    // checker must not cry wolf either.
    let quiet = [
        Source::new(
            "run",
            "src/run/mod.rs",
            "mod lease;\nfn go() { lease::settle(); }\n",
        ),
        Source::new(
            "run::lease",
            "src/run/lease.rs",
            "// use super::Round;\npub fn settle() {}\n#[cfg(test)]\nmod tests {\n    use super::super::*;\n}\n",
        ),
    ];
    assert_eq!(circles(&module_graph(&quiet)), Vec::<Vec<String>>::new());

    // Only the test module is skipped: a reference after it still counts.
    let after = [
        Source::new(
            "run",
            "src/run/mod.rs",
            "mod lease;\nfn go() { lease::settle(); }\n",
        ),
        Source::new(
            "run::lease",
            "src/run/lease.rs",
            "pub fn settle() {}\n#[cfg(test)]\nmod tests {\n    fn t() {}\n}\n\nfn later() { super::go() }\n",
        ),
    ];
    let graph = module_graph(&after);
    assert_eq!(circles(&graph), [vec!["run", "run::lease"]]);
    assert!(describe(&graph, &circles(&graph)).contains("src/run/lease.rs:7 `super::go`"));
}

/// Every `.rs` file under `src/` but the test-only ones, in a stable order.
fn read_src() -> Vec<Source> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    collect_rs(&root, &mut files);
    files.sort();

    let mut sources = Vec::new();
    for path in files {
        let relative = path.strip_prefix(&root).unwrap().with_extension("");
        let mut parts: Vec<String> = relative
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        if parts.last().is_some_and(|p| p == "mod") {
            parts.pop();
        }
        if parts
            .last()
            .is_some_and(|p| TEST_ONLY_FILES.contains(&p.as_str()))
        {
            continue;
        }
        let module = if parts == ["lib"] || parts == ["main"] {
            String::new()
        } else {
            parts.join("::")
        };
        let file = format!(
            "src/{}",
            path.strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/")
        );
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
        sources.push(Source::new(&module, &file, &text));
    }
    sources
}

fn collect_rs(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_rs(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// The text with its inline test modules (`#[cfg(test)]` then `mod tests {`)
/// blanked, down to the module's closing `}`, which rustfmt puts alone at the
/// start of a line. Blanked, not cut: code after a test module is still
/// checked, and lines keep their numbers. Other `#[cfg(test)]` items (helpers
/// the tests share) stay in.
fn without_tests(text: &str) -> String {
    let mut kept = String::with_capacity(text.len());
    let mut in_tests = false;
    let mut lines = text.split_inclusive('\n').peekable();
    while let Some(line) = lines.next() {
        if !in_tests
            && line.trim() == "#[cfg(test)]"
            && lines
                .peek()
                .is_some_and(|next| next.trim_start().starts_with("mod tests {"))
        {
            in_tests = true;
        }
        if in_tests {
            if line.ends_with('\n') {
                kept.push('\n');
            }
            in_tests = line.trim_end() != "}";
        } else {
            kept.push_str(line);
        }
    }
    kept
}

/// Blanks every `//` comment (doc comments too: an example in one is no
/// import). Blind spots: a `//` inside a string literal hides the rest of its
/// line, and `/* */` comments are read as code; src/ has neither where it
/// matters.
fn strip_comments(text: &str) -> String {
    text.split_inclusive('\n')
        .map(|line| match line.find("//") {
            Some(start) => {
                let newline = if line.ends_with('\n') { "\n" } else { "" };
                format!("{}{newline}", &line[..start])
            }
            None => line.to_string(),
        })
        .collect()
}

/// The references of each module to the others, found three ways: `use`
/// statements, inline paths from `crate`, `super` or `self`, and paths that
/// start with the name of a child module (`lease::settle(` in `run`). A
/// reference to a parent or a child counts like any other: a parent that uses
/// a child which uses the parent is a circle all the same.
fn module_graph(modules: &[Source]) -> Graph {
    let known: BTreeSet<String> = modules.iter().map(|s| s.module.clone()).collect();
    let mut graph: Graph = known.iter().map(|m| (m.clone(), BTreeMap::new())).collect();

    for source in modules {
        let mut add = |path: &[String], offset: usize| {
            let Some(target) = resolve(&source.module, path, &known) else {
                return;
            };
            if target == source.module {
                return;
            }
            let reference = Reference {
                file: source.file.clone(),
                line: source.line_of(offset),
                path: path.join("::"),
            };
            let edges = graph.get_mut(&source.module).unwrap();
            // Keep the earliest place, the one a reader meets first.
            match edges.get(&target) {
                Some(seen) if seen.line <= reference.line => {}
                _ => {
                    edges.insert(target, reference);
                }
            }
        };

        // The `use` statements are read whole (their braces nest) and then
        // blanked, so that the inline scan does not take `{mysql::X}` inside
        // one for a child module's path.
        let mut rest = source.code.clone();
        for (start, end) in use_statements(&source.code) {
            let body = &source.code[start + "use".len()..end];
            let mut paths = Vec::new();
            flatten(&[], body, &mut paths);
            for path in paths {
                add(&path, start);
            }
            // Same length in bytes, same newlines: offsets and lines still hold.
            let blank: String = source.code[start..=end]
                .chars()
                .map(|c| {
                    if c == '\n' {
                        "\n".to_string()
                    } else {
                        " ".repeat(c.len_utf8())
                    }
                })
                .collect();
            rest.replace_range(start..=end, &blank);
        }

        for (start, path) in inline_paths(&rest) {
            // A lone identifier is no path; `crate::x` and `lease::settle` are.
            if path.len() >= 2 {
                add(&path, start);
            }
        }
    }
    graph
}

/// The byte ranges of `use … ;` statements: from the `u` to the `;`.
fn use_statements(code: &str) -> Vec<(usize, usize)> {
    let bytes = code.as_bytes();
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = code[from..].find("use").map(|i| i + from) {
        from = at + "use".len();
        // `use` as a word of its own, followed by white space: not `unused`,
        // `reuse` or `use_x`.
        let starts_word = at == 0 || !is_word(code[..at].chars().next_back().unwrap());
        let then_space = bytes.get(from).is_some_and(|b| b.is_ascii_whitespace());
        if !(starts_word && then_space) {
            continue;
        }
        let Some(end) = code[from..].find(';').map(|i| i + from) else {
            break;
        };
        found.push((at, end));
        from = end + 1;
    }
    found
}

/// The paths a `use` tree names, one per leaf: `crate::a::{b, c::{d, e as f}}`
/// gives `crate::a::b`, `crate::a::c::d` and `crate::a::c::e`. A rename does
/// not change what is imported, so `as …` is dropped.
fn flatten(prefix: &[String], body: &str, out: &mut Vec<Vec<String>>) {
    for item in split_top_level(body) {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let mut path = prefix.to_vec();
        match item.find('{') {
            Some(open) if item.ends_with('}') => {
                // `head::{…}` (or a bare `{…}`): the head prefixes every item inside.
                path.extend(segments(&item[..open]));
                flatten(&path, &item[open + 1..item.len() - 1], out);
            }
            _ => {
                let named = item
                    .split_whitespace()
                    .take_while(|w| *w != "as")
                    .collect::<Vec<_>>()
                    .join(" ");
                path.extend(segments(&named));
                out.push(path);
            }
        }
    }
}

/// The items of a `use` tree's level, split at the commas outside braces.
fn split_top_level(body: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in body.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                items.push(&body[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&body[start..]);
    items
}

fn segments(path: &str) -> Vec<String> {
    path.split("::")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// Every path written in code: a run of `ident::ident…` whose first
/// identifier does not itself follow a `::` (that would be the middle of a
/// longer path). A leading `::` (an absolute path, `::toml::from_str`) is
/// taken as part of the path, except after `>` where it belongs to a qualified
/// path (`<T as Tr>::f`). Each comes with the byte offset it starts at.
fn inline_paths(code: &str) -> Vec<(usize, Vec<String>)> {
    let chars: Vec<(usize, char)> = code.char_indices().collect();
    let at = |i: usize| chars.get(i).map(|&(_, c)| c);
    let mut paths = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i].1;
        let before = i.checked_sub(1).and_then(at);
        let ident_start = is_word(c) && !before.is_some_and(|b| is_word(b) || b == ':');
        let absolute = c == ':'
            && at(i + 1) == Some(':')
            && at(i + 2).is_some_and(is_word)
            && !before.is_some_and(|b| is_word(b) || b == ':' || b == '>');
        if !(ident_start || absolute) {
            i += 1;
            continue;
        }
        let start = chars[i].0;
        let mut path = Vec::new();
        let mut j = if absolute { i + 2 } else { i };
        loop {
            let from = j;
            while at(j).is_some_and(is_word) {
                j += 1;
            }
            path.push(chars[from..j].iter().map(|&(_, c)| c).collect::<String>());
            if at(j) == Some(':') && at(j + 1) == Some(':') && at(j + 2).is_some_and(is_word) {
                j += 2;
            } else {
                break;
            }
        }
        paths.push((start, path));
        i = j;
    }
    paths
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The module a path names, as seen from `module`: the longest prefix of the
/// absolute path that is a known module (`crate::run::plan::Plan` is
/// `run::plan`). A path that starts with neither `crate`, `super` nor `self`
/// is a module's only if its first segment is a child of `module`; otherwise
/// it names a dependency (`std::…`, `tokio::…`) or a local item.
fn resolve(module: &str, path: &[String], known: &BTreeSet<String>) -> Option<String> {
    let mut base: Vec<&str> = module.split("::").filter(|s| !s.is_empty()).collect();
    let mut rest: Vec<&str> = path.iter().map(String::as_str).collect();
    match *rest.first()? {
        "crate" => {
            base.clear();
            rest.remove(0);
        }
        "super" => {
            while rest.first() == Some(&"super") {
                base.pop();
                rest.remove(0);
            }
        }
        "self" => {
            rest.remove(0);
        }
        child => {
            let mut as_child = base.clone();
            as_child.push(child);
            if !known.contains(&as_child.join("::")) {
                return None;
            }
        }
    }
    let absolute: Vec<&str> = base.into_iter().chain(rest).collect();
    (1..=absolute.len())
        .rev()
        .map(|n| absolute[..n].join("::"))
        .find(|m| known.contains(m))
}

/// The strongly connected components with more than one module (Tarjan's
/// algorithm): each is a set of modules that all reach one another, that is a
/// circle. Sorted, so that a failure reads the same on every run.
fn circles(graph: &Graph) -> Vec<Vec<String>> {
    struct Tarjan<'g> {
        graph: &'g Graph,
        next: usize,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        found: Vec<Vec<String>>,
    }

    impl<'g> Tarjan<'g> {
        fn visit(&mut self, v: &'g str) {
            self.index.insert(v, self.next);
            self.low.insert(v, self.next);
            self.next += 1;
            self.stack.push(v);
            self.on_stack.insert(v);
            let graph = self.graph;
            for w in graph[v].keys().map(String::as_str) {
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.on_stack.contains(w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                loop {
                    let w = self.stack.pop().unwrap();
                    self.on_stack.remove(w);
                    component.push(w.to_string());
                    if w == v {
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

    let mut tarjan = Tarjan {
        graph,
        next: 0,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !tarjan.index.contains_key(v.as_str()) {
            tarjan.visit(v);
        }
    }
    tarjan.found.sort();
    tarjan.found
}

/// Each circle's modules, and inside it who references whom and where: what
/// one needs to decide which reference goes.
fn describe(graph: &Graph, circles: &[Vec<String>]) -> String {
    let mut text = String::new();
    for circle in circles {
        text.push_str(&format!("circle: {}\n", circle.join(", ")));
        for from in circle {
            for (to, r) in &graph[from] {
                if circle.contains(to) {
                    text.push_str(&format!(
                        "  {from} -> {to}: {}:{} `{}`\n",
                        r.file, r.line, r.path
                    ));
                }
            }
        }
    }
    text
}

/// The offset of the first place `code` names `krate` as a path: `krate::…`
/// (also absolute, `::krate::…`) or `use krate` (`use krate;`,
/// `use krate as k;`).
fn first_mention(code: &str, krate: &str) -> Option<usize> {
    let inline = inline_paths(code)
        .into_iter()
        .find(|(_, p)| p.len() >= 2 && p[0] == krate)
        .map(|(at, _)| at);
    let used = use_statements(code).into_iter().find_map(|(start, end)| {
        let mut paths = Vec::new();
        flatten(&[], &code[start + "use".len()..end], &mut paths);
        paths
            .iter()
            .any(|p| p.first().is_some_and(|s| s == krate))
            .then_some(start)
    });
    inline.into_iter().chain(used).min()
}
