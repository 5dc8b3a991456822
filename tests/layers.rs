//! The layers of ARCHITECTURE.md, checked: reads every file under `src/` and fails when a module
//! imports from a layer above its own, or when anything outside the transports (and the few
//! client/listener edges named below) uses `tonic` or the generated `crate::pb` types. A small
//! parser of `crate::<module>` paths and `tonic::` mentions in code lines (comments skipped).

use std::path::{Path, PathBuf};

/// A layer, lowest first; a file may name modules of its own layer or below.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Layer {
    /// Policy, store, audit, clock, cases, exchange, signal, pseudonym, … and the edges below.
    Domain,
    /// `src/service/`: the operations every transport calls.
    Service,
    /// gRPC handlers, the node's wiring, the CLI, the demo, (later) REST and the console.
    Transport,
}

/// Where each file belongs, by path under `src/`; anything not listed is Domain. The generated
/// `pb` module is the wire contract, in no layer: only transports and the edges may use it.
const TRANSPORTS: &[&str] = &[
    "rpc/",
    "rpc.rs",
    "node.rs",
    "node/",
    "cli.rs",
    "cli/",
    // Rendering answers (the generated types) for people, shared by the CLI and the demo.
    "text.rs",
    // Starting real nodes for the tests, the benches and the demo: the node's wiring, from above.
    "harness.rs",
    "demo.rs",
    "demo/",
    "rest/",
    "rest.rs",
    "console/",
    "console.rs",
    "main.rs",
    // The pseudonymisation service's own gRPC server (a separate service).
    "pseudonymiser/service.rs",
];
const SERVICE: &[&str] = &["service/", "service.rs"];

/// Edges of the domain layer that speak gRPC or TLS themselves and so may use tonic (never a
/// transport's code): client channels to peers, witnesses and the pseudonymisation service, the
/// TLS listener and its limits, the certificate's identity, the trace header, the importer that
/// emits wire records.
const TONIC_EDGES: &[&str] = &[
    // The generated types themselves.
    "pb.rs",
    "client.rs",
    "peers.rs",
    "witness_client.rs",
    "pseudonymiser/client.rs",
    "pseudonymiser/mod.rs",
    "tls.rs",
    "limits.rs",
    "identity.rs",
    "trace.rs",
    "import.rs",
];

fn layer_of(rel: &str) -> Layer {
    if SERVICE.iter().any(|p| rel.starts_with(p)) {
        return Layer::Service;
    }
    if TRANSPORTS.iter().any(|p| rel.starts_with(p)) {
        return Layer::Transport;
    }
    Layer::Domain
}

/// The layer of a top-level module named in a `crate::<name>` path (its file or directory).
fn layer_of_module(name: &str) -> Layer {
    let file = format!("{name}.rs");
    let dir = format!("{name}/");
    layer_of(&file).max(layer_of(&dir))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code lines of a file: comments (`//`, `///`, `//!`) and doc text left out.
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.split("//").next().unwrap_or("")))
        .filter(|(_, l)| !l.trim().is_empty())
}

/// The module names a line reaches with `crate::<name>`, including `use crate::{a, b}` groups.
fn crate_modules(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            let inner = group.split('}').next().unwrap_or("");
            out.extend(
                inner
                    .split(',')
                    .map(|p| p.trim().split("::").next().unwrap_or("").trim().to_owned())
                    .filter(|n| !n.is_empty()),
            );
        } else {
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.push(name);
            }
        }
        rest = after;
    }
    out
}

fn uses_tonic_or_pb(line: &str) -> bool {
    let tonic = line.match_indices("tonic").any(|(i, _)| {
        let before = line[..i].chars().last();
        let after = &line[i + "tonic".len()..];
        !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            && (after.starts_with("::") || after.starts_with(';'))
    });
    tonic || crate_modules(line).iter().any(|m| m == "pb")
}

struct Finding {
    file: String,
    line: usize,
    what: String,
}

fn findings(src: &Path) -> Vec<Finding> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut found = Vec::new();
    for path in files {
        let rel = path
            .strip_prefix(src)
            .expect("under src/")
            .to_string_lossy()
            .replace('\\', "/");
        let own = layer_of(&rel);
        let text = std::fs::read_to_string(&path).expect("a readable source file");
        for (line, code) in code_lines(&text) {
            for module in crate_modules(code) {
                let theirs = layer_of_module(&module);
                if theirs > own {
                    found.push(Finding {
                        file: rel.clone(),
                        line,
                        what: format!(
                            "a {own:?} module uses crate::{module}, of the {theirs:?} layer above it"
                        ),
                    });
                }
            }
            let edge = TONIC_EDGES.iter().any(|p| rel == *p);
            if own != Layer::Transport && !edge && uses_tonic_or_pb(code) {
                found.push(Finding {
                    file: rel.clone(),
                    line,
                    what: format!(
                        "a {own:?} module uses tonic or the generated pb types: `{}`",
                        code.trim()
                    ),
                });
            }
        }
    }
    found
}

#[test]
fn modules_import_only_their_own_layer_or_below() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = findings(&src);
    let report: Vec<String> = found
        .iter()
        .map(|f| format!("src/{}:{}: {}", f.file, f.line, f.what))
        .collect();
    assert!(
        report.is_empty(),
        "{} layering violations (see ARCHITECTURE.md):\n{}",
        report.len(),
        report.join("\n")
    );
}

#[test]
fn the_parser_sees_what_it_must() {
    assert_eq!(crate_modules("use crate::rpc::convert;"), ["rpc"]);
    assert_eq!(
        crate_modules("use crate::{node::NodeContext, store::Store};"),
        ["node", "store"]
    );
    assert_eq!(
        crate_modules("    let x = crate::service::refuse_id_like(a, b)?;"),
        ["service"]
    );
    assert!(uses_tonic_or_pb("use tonic::Status;"));
    assert!(uses_tonic_or_pb("fn f(s: tonic::Status) {}"));
    assert!(uses_tonic_or_pb("use crate::pb;"));
    assert!(!uses_tonic_or_pb("let tonic_health = 1;"));
    assert!(!uses_tonic_or_pb("use crate::pbx::Thing;"));
    assert_eq!(layer_of("rpc/intake.rs"), Layer::Transport);
    assert_eq!(layer_of("service/intake.rs"), Layer::Service);
    assert_eq!(layer_of("policy/evaluate.rs"), Layer::Domain);
    assert_eq!(layer_of_module("node"), Layer::Transport);
    assert_eq!(layer_of_module("pseudonymiser"), Layer::Domain);
    assert_eq!(layer_of("pseudonymiser/service.rs"), Layer::Transport);
}

/// The check itself fails on a violation: a scratch `src/` with a domain module that imports
/// the service layer and uses tonic, and a service module that imports a transport.
#[test]
fn a_violation_is_found() {
    let dir = std::env::temp_dir().join(format!("pactgate-layers-{}", std::process::id()));
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("service")).unwrap();
    std::fs::write(
        src.join("store.rs"),
        "// crate::rpc in a comment is fine\nuse crate::service::Caller;\nuse tonic::Status;\n",
    )
    .unwrap();
    std::fs::write(
        src.join("service/mod.rs"),
        "use crate::rpc::caller;\nuse crate::store::Store;\n",
    )
    .unwrap();
    std::fs::write(
        src.join("rpc.rs"),
        "use crate::service::Service;\nuse tonic::Status;\n",
    )
    .unwrap();
    let found = findings(&src);
    let _ = std::fs::remove_dir_all(&dir);
    let mut places: Vec<(String, usize)> = found.iter().map(|f| (f.file.clone(), f.line)).collect();
    places.sort();
    assert_eq!(
        places,
        [
            ("service/mod.rs".to_owned(), 1),
            ("store.rs".to_owned(), 2),
            ("store.rs".to_owned(), 3)
        ]
    );
}
