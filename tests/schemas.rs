//! The JSON Schema of systemg.yaml agrees with the parser: it accepts every example (in
//! examples/ and in the docs) and rejects the malformed corpus; the shipped copy is up to
//! date; the output schemas are valid schemas. Every YAML example in the docs is a valid
//! config.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

use std::path::{Path, PathBuf};

use serde_json::Value;
use systemg::config::{input_schema, load_str};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn validator() -> jsonschema::Validator {
    jsonschema::validator_for(&input_schema::schema()).expect("the config schema compiles")
}

/// YAML text as JSON, the way an editor's language server sees it; `None` when it is not
/// one valid YAML document.
fn yaml_to_json(text: &str) -> Option<Value> {
    let mut opts = serde_saphyr::Options::default();
    // YAML 1.2, like the config parser and yaml-language-server: `y` and `no` are strings.
    opts.strict_booleans = true;
    serde_saphyr::from_str_with_options::<Value>(text, opts).ok()
}

fn errors(v: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    v.iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// ```yaml blocks of a markdown file, with their starting line. Two first-line comments mark
/// blocks that are not whole systemg configs and are skipped: `# fragment` (partial on
/// purpose: a piece of a service shown alone) and `# other:` (another tool's file, shown for
/// comparison).
fn yaml_blocks(md: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in md.lines().enumerate() {
        match &mut current {
            None if line.trim_start().starts_with("```yaml") => {
                current = Some((i + 2, String::new()))
            }
            None => {}
            Some(_) if line.trim_start().starts_with("```") => {
                if let Some((at, text)) = current.take() {
                    let first = text.trim_start();
                    if !(first.starts_with("# fragment") || first.starts_with("# other:")) {
                        out.push((at, text));
                    }
                }
            }
            Some((_, text)) => {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    out
}

fn markdown_files() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("docs/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// Every YAML example: examples/*.yaml and the docs' blocks, as (where, text).
fn all_examples() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut ex: Vec<PathBuf> = std::fs::read_dir(root().join("examples"))
        .expect("examples/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    ex.sort();
    for p in ex {
        out.push((
            p.display().to_string(),
            std::fs::read_to_string(&p).expect("read"),
        ));
    }
    for md in markdown_files() {
        let text = std::fs::read_to_string(&md).expect("read");
        for (line, block) in yaml_blocks(&text) {
            out.push((format!("{}:{line}", md.display()), block));
        }
    }
    out
}

#[test]
fn every_doc_example_is_a_valid_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Examples may name an env file next to the config.
    std::fs::write(dir.path().join(".env"), "EXAMPLE=1\n").expect("write .env");
    let examples = all_examples();
    let docs = examples.iter().filter(|(w, _)| w.contains(".md:")).count();
    assert!(docs >= 10, "the docs lost their examples: {docs}");
    for (where_, text) in &examples {
        if let Err(e) = load_str(text, &dir.path().join("systemg.yaml")) {
            panic!("{where_}: example does not validate:\n{e}\n---\n{text}");
        }
    }
}

#[test]
fn schema_accepts_every_example() {
    let v = validator();
    for (where_, text) in all_examples() {
        let doc = yaml_to_json(&text).unwrap_or_else(|| panic!("{where_}: not YAML"));
        let errs = errors(&v, &doc);
        assert!(errs.is_empty(), "{where_}: schema rejects it: {errs:#?}");
    }
}

/// Malformed files the schema cannot catch: what only the whole-file checks see.
const SEMANTIC_ONLY: &[&str] = &[
    // A dependency cycle is a property of the graph, not of any one value.
    "cycle.yaml",
    // A signal name is a plain string to the schema; the parser knows the signal table.
    "bad_signal.yaml",
    // Out of range for the integer type the parser reads it into; JSON Schema has no u32.
    "huge_integer.yaml",
    // The schema cannot see the file system.
    "missing_env_file.yaml",
    // References between services are checked against the whole file by the parser.
    "self_dependency.yaml",
    "unknown_dependency.yaml",
    // A NUL inside a string: the schema describes values, not the bytes no C string may hold.
    "nul_in_env.yaml",
    "nul_in_exec.yaml",
    // The unit name's length depends on how systemd escapes project and service together.
    "long_unit_name.yaml",
];

#[test]
fn schema_rejects_the_malformed_corpus() {
    let v = validator();
    let dir = root().join("tests/corpus/malformed");
    let mut checked = 0;
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("corpus")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    let mut accepted: Vec<String> = Vec::new();
    for path in entries {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_string();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        // Invalid YAML is the YAML parser's business, not the schema's.
        let Some(doc) = yaml_to_json(&text) else {
            continue;
        };
        checked += 1;
        let errs = errors(&v, &doc);
        if SEMANTIC_ONLY.contains(&name.as_str()) {
            assert!(
                errs.is_empty(),
                "{name} is now caught by the schema ({errs:?}): update SEMANTIC_ONLY"
            );
            assert!(
                load_str(&text, &path).is_err(),
                "{name}: the parser must reject it"
            );
        } else if errs.is_empty() {
            accepted.push(name);
        }
    }
    assert!(
        accepted.is_empty(),
        "the schema accepts these malformed configs: {accepted:?}"
    );
    assert!(checked >= 8, "only {checked} corpus files were valid YAML");
}

#[test]
fn schema_and_parser_agree_on_targeted_cases() {
    let v = validator();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("systemg.yaml");
    let wrap = |svc: &str| format!("version: \"1\"\nservices:\n  web:\n{svc}");
    let good = [
        "    command: x\n    backoff: 1m30s\n    stop_timeout: 10\n",
        "    exec: [sleep, 1, true]\n",
        "    command: x\n    depends_on: web2\n",
        "    command: x\n    limits: {nofile: 64K, memlock: unlimited, nice: -5, cpu_affinity: [0], cgroup: {memory_max: 512M, cpu_max: \"50%\"}}\n",
        "    command: x\n    stop_signal: TERM\n",
        "    command: x\n    stop_signal: 9\n",
        "    command: x\n    hooks: {on_start: \"echo hi\", on_exit: {command: \"echo bye\", timeout: 5s}}\n",
        "    command: x\n    health_check: {tcp: \"localhost:5432\", interval: 2s}\n",
        "    command: x\n    cron: {expression: \"*/5 * * * *\"}\n",
        "    command: x\n    capabilities: [net_bind_service, CAP_CHOWN]\n",
        "    command: x\n    readiness: notify\n    start_timeout: 30s\n    watchdog: 10s\n",
        "    command: x\n    readiness: exec\n    reload: {signal: SIGHUP}\n",
        "    command: x\n    readiness: notify\n    start_timeout: 0\n",
        "    command: x\n    reload: {command: \"kill -USR2 $MAINPID\"}\n",
    ];
    let bad = [
        "    command: x\n    exec: [y]\n",
        "    backoff: 1s\n",
        "    command: x\n    backoff: 5 parsecs\n",
        "    command: x\n    health_check: {url: \"http://h/\", tcp: \"h:1\"}\n",
        "    command: x\n    restart_policy: sometimes\n",
        "    command: x\n    cron: {expression: \"@daily\"}\n    restart_policy: always\n",
        "    command: x\n    limits: {nice: 40}\n",
        "    command: x\n    comand: y\n",
        "    command: \"   \"\n",
        "    command: x\n    env: {vars: {1BAD: x}}\n",
        "    command: x\n    backoff:\n",
        "    command: x\n    watchdog: 10s\n",
        "    command: x\n    readiness: exec\n    watchdog: 10s\n",
        "    command: x\n    readiness: ready\n",
        "    command: x\n    reload: {signal: HUP, command: y}\n",
        "    command: x\n    reload: {}\n",
    ];
    let sibling = "  web2:\n    command: y\n";
    for svc in good {
        let text = wrap(svc) + sibling;
        assert!(load_str(&text, &file).is_ok(), "parser rejects:\n{text}");
        let errs = errors(&v, &yaml_to_json(&text).expect("yaml"));
        assert!(errs.is_empty(), "schema rejects:\n{text}\n{errs:#?}");
    }
    for svc in bad {
        let text = wrap(svc) + sibling;
        assert!(load_str(&text, &file).is_err(), "parser accepts:\n{text}");
        let errs = errors(&v, &yaml_to_json(&text).expect("yaml"));
        assert!(!errs.is_empty(), "schema accepts:\n{text}");
    }
}

#[test]
fn shipped_config_schema_is_up_to_date() {
    let path = root().join(input_schema::SHIPPED_PATH);
    let generated = input_schema::schema_text().expect("schema");
    if std::env::var_os("SYSG_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write schema");
    }
    let shipped = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        shipped == generated,
        "{} is stale: run `SYSG_BLESS=1 cargo test --test schemas` (or `sysg schema > {}`)",
        path.display(),
        input_schema::SHIPPED_PATH
    );
}

#[test]
fn output_schemas_are_valid_schemas() {
    for name in ["status", "inspect", "validate", "logs"] {
        let p = root().join(format!("docs/schemas/{name}.schema.json"));
        let text = std::fs::read_to_string(&p).expect("read");
        let schema: Value = serde_json::from_str(&text).expect("JSON");
        assert!(
            jsonschema::meta::is_valid(&schema),
            "{}: not a valid JSON Schema",
            p.display()
        );
        jsonschema::validator_for(&schema).expect("compiles");
    }
}

#[test]
fn block_extraction_skips_fragments() {
    let md = "x\n```yaml\na: 1\n```\n```yaml\n# fragment\nb: 2\n```\n```yaml\n# other: compose\nc: 3\n```\n```json\n{}\n```\n";
    let blocks = yaml_blocks(md);
    assert_eq!(blocks, vec![(3, "a: 1\n".to_string())]);
    assert!(Path::new(&root()).join("README.md").exists());
}
