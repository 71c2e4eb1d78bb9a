//! The structure ARCHITECTURE.md promises, checked on the source: which module may use which,
//! no cycles, adapters chosen only by the wiring, the domain off the host's clock and
//! environment, and no function over 100 lines outside tests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Who may use whom, by top-level module of the crate. The order is the layering: commands
/// (`cli`, `demo`) and the wiring on top, then the entry points (`server`, `worker`), the domain
/// (`manager`, `bootstrap`), the ports with their adapters (`forge`, `backend`, `store`,
/// `queue`), and the vocabulary (`config`, `model`).
const ALLOWED: &[(&str, &[&str])] = &[
    ("model", &[]),
    ("clock", &[]),
    ("records", &["model"]),
    ("memory", &["clock", "model", "records"]),
    ("prom", &[]),
    ("addr_limit", &[]),
    ("fake_server", &["model"]),
    ("config", &["model"]),
    ("conn", &["config"]),
    ("store", &["clock", "config", "conn", "model", "records"]),
    ("queue", &["conn", "model", "store"]),
    ("worker", &["conn", "model", "prom", "queue"]),
    ("hook", &[]),
    ("bootstrap", &["config", "hook"]),
    (
        "broker",
        &["addr_limit", "config", "conn", "model", "records"],
    ),
    ("budget", &["clock", "conn", "model", "prom"]),
    ("forge", &["budget", "config", "fake_server", "model"]),
    (
        "backend",
        &[
            "bootstrap",
            "config",
            "conn",
            "fake_server",
            "model",
            "prom",
        ],
    ),
    (
        "manager",
        &[
            "backend",
            "bootstrap",
            "budget",
            "broker",
            "config",
            "forge",
            "model",
            "prom",
            "queue",
            "records",
            "store",
            "worker",
        ],
    ),
    (
        "listener",
        &[
            "config", "forge", "manager", "model", "prom", "queue", "store",
        ],
    ),
    (
        "server",
        &[
            "addr_limit",
            "listener",
            "backend",
            "broker",
            "budget",
            "config",
            "forge",
            "manager",
            "model",
            "prom",
            "queue",
            "records",
            "store",
            "worker",
        ],
    ),
    (
        "error",
        &[
            "backend", "config", "forge", "hook", "manager", "queue", "store",
        ],
    ),
    (
        "wiring",
        &[
            "backend",
            "bootstrap",
            "broker",
            "budget",
            "config",
            "error",
            "forge",
            "listener",
            "manager",
            "queue",
            "server",
            "store",
        ],
    ),
    (
        "demo",
        &[
            "backend", "config", "forge", "manager", "model", "queue", "server", "store", "wiring",
            "worker",
        ],
    ),
    (
        "simulate",
        &[
            "backend", "clock", "config", "forge", "manager", "memory", "model", "wiring",
        ],
    ),
    (
        "cli",
        &[
            "backend",
            "bootstrap",
            "broker",
            "budget",
            "config",
            "demo",
            "error",
            "forge",
            "hook",
            "manager",
            "model",
            "queue",
            "records",
            "server",
            "simulate",
            "store",
            "wiring",
            "worker",
        ],
    ),
];

/// Adapters: implementations of a port. Only the wiring and the commands pick one; their own
/// module registers or uses them internally.
const ADAPTERS: &[&str] = &[
    "forge::github",
    "forge::fake",
    "forge::fake_limits",
    "backend::fake",
    "backend::docker",
    "backend::aws",
    "backend::gcp",
    "backend::vsphere",
    "forge::gitea",
];
const MAY_PICK_ADAPTERS: &[&str] = &["wiring", "cli", "demo"];

/// A source file with its module path and its text outside `#[cfg(test)] mod tests`.
struct Source {
    path: PathBuf,
    module: Vec<String>,
    text: String,
}

fn sources() -> Vec<Source> {
    let mut out = Vec::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut stack = vec![root.clone()];
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
            let rel = path.strip_prefix(&root).unwrap().with_extension("");
            let mut module: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if module.last().is_some_and(|m| m == "mod") {
                module.pop();
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let text = match text.find("#[cfg(test)]\nmod tests") {
                Some(i) => text[..i].to_string(),
                None => text,
            };
            out.push(Source { path, module, text });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// Every `crate::a::b` a file names, as `a` and `a::b`.
fn references(text: &str) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        let path: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        let mut parts = path.split("::").filter(|p| !p.is_empty());
        if let Some(top) = parts.next() {
            let second = parts.next().unwrap_or("");
            out.insert((top.to_string(), format!("{top}::{second}")));
        }
    }
    out
}

fn top_modules() -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in sources() {
        let top = s.module[0].clone();
        if top == "lib" || top == "main" {
            continue;
        }
        let deps = graph.entry(top.clone()).or_default();
        for (used, _) in references(&s.text) {
            if used != top && used != "Error" && used != "Result" {
                deps.insert(used);
            }
        }
    }
    graph
}

#[test]
fn modules_use_only_the_layers_below_them() {
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut wrong = Vec::new();
    for (module, deps) in top_modules() {
        let Some(ok) = allowed.get(module.as_str()) else {
            wrong.push(format!(
                "`{module}` is not in the layering of tests/architecture.rs"
            ));
            continue;
        };
        for d in deps {
            if !ok.contains(&d.as_str()) {
                wrong.push(format!("`{module}` uses `{d}`"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn there_are_no_cycles_between_modules() {
    let graph = top_modules();
    // Depth-first search for a back edge.
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == n) {
            let mut cycle = path[i..].to_vec();
            cycle.push(n.to_string());
            return Some(cycle);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_string());
        for d in graph.get(n).into_iter().flatten() {
            if let Some(c) = visit(d, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for n in graph.keys() {
        if let Some(cycle) = visit(n, &graph, &mut Vec::new(), &mut done) {
            panic!("a cycle: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn only_the_wiring_and_the_commands_pick_an_adapter() {
    let mut wrong = Vec::new();
    for s in sources() {
        let top = s.module[0].as_str();
        if MAY_PICK_ADAPTERS.contains(&top) {
            continue;
        }
        for (_, full) in references(&s.text) {
            let own = full.starts_with(&format!("{top}::"));
            if ADAPTERS.contains(&full.as_str()) && !own {
                wrong.push(format!("{} names `{full}`", s.path.display()));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_domain_reads_neither_the_wall_clock_nor_the_environment() {
    let mut wrong = Vec::new();
    for s in sources() {
        let top = s.module[0].as_str();
        let domain = matches!(top, "manager" | "store" | "bootstrap" | "backend" | "forge");
        for needle in ["SystemTime", "unix_now", "chrono::"] {
            if matches!(top, "manager" | "store") && s.text.contains(needle) {
                wrong.push(format!(
                    "{} reads the host's clock ({needle})",
                    s.path.display()
                ));
            }
        }
        // Secrets and settings reach the domain resolved; only the commands and
        // `SecretSource::resolve` read variables.
        if domain && s.text.contains("std::env::var") {
            wrong.push(format!("{} reads the environment", s.path.display()));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The length of every function outside tests: (lines, file, name).
fn function_lengths() -> Vec<(usize, String, String)> {
    let mut out = Vec::new();
    for s in sources() {
        let lines: Vec<&str> = s.text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let trimmed = line.trim_start();
            let indent = &line[..line.len() - trimmed.len()];
            let sig = [
                "pub fn ",
                "fn ",
                "pub async fn ",
                "async fn ",
                "pub(crate) fn ",
            ]
            .iter()
            .find_map(|p| trimmed.strip_prefix(p));
            let Some(sig) = sig else { continue };
            let name: String = sig
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            // A declaration without a body (a trait's) ends with `;` before any `{`.
            let head_end = lines[i..]
                .iter()
                .position(|l| l.trim_end().ends_with('{') || l.trim_end().ends_with(';'));
            let Some(h) = head_end else { continue };
            if lines[i + h].trim_end().ends_with(';') {
                continue;
            }
            let close = format!("{indent}}}");
            let end = lines[i..].iter().position(|l| *l == close);
            let len = end.map_or(1, |e| e + 1);
            out.push((len, s.path.display().to_string(), name));
        }
    }
    out.sort();
    out.reverse();
    out
}

#[test]
fn no_function_is_over_100_lines_outside_tests() {
    let long: Vec<String> = function_lengths()
        .into_iter()
        .filter(|(n, _, _)| *n > 100)
        .map(|(n, file, name)| format!("{file}: `{name}` has {n} lines"))
        .collect();
    assert!(long.is_empty(), "split these:\n{}", long.join("\n"));
}

/// Redis Cluster routes a script by the keys it declares and refuses keys it does not: no Lua
/// script may build a key name (`redis.call('GET', prefix .. name)`); every key comes from
/// `KEYS` (or a function returning one of them).
#[test]
fn every_lua_script_declares_its_keys() {
    let mut wrong = Vec::new();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lua");
    let mut scripts: Vec<(PathBuf, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "lua"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect();
    assert!(scripts.len() >= 20, "the Lua scripts are files in src/lua");
    // And none is left inline in the Rust sources.
    for s in sources() {
        if s.text.contains("redis.call(") {
            wrong.push(format!("{}: a Lua script inline", s.path.display()));
        }
    }
    scripts.sort();
    for (path, text) in &scripts {
        if !text.starts_with("--") || !text.contains("KEYS") {
            wrong.push(format!(
                "{}: opens without a comment naming its KEYS and ARGV",
                path.display()
            ));
        }
    }
    for (path, text) in scripts {
        let s = Source {
            path,
            module: vec![],
            text,
        };
        for (i, line) in s.text.lines().enumerate() {
            let mut rest = line;
            while let Some(at) = rest.find("redis.call(") {
                rest = &rest[at + "redis.call(".len()..];
                // The first argument after the command name is the key.
                let Some((_, after_cmd)) = rest.split_once(',') else {
                    break;
                };
                let key = after_cmd.split([',', ')']).next().unwrap_or("").trim();
                if key.contains("..") {
                    wrong.push(format!("{}:{}: {}", s.path.display(), i + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "keys built inside Lua:\n{}",
        wrong.join("\n")
    );
}
