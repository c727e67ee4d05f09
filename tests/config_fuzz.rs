//! Config fuzzing with a deterministic random corpus (fixed seeds: a failure reproduces, and
//! the case is printed): `load_str` never panics, and when the input is valid YAML every
//! problem it reports has a position. Two generators: random documents over the schema's own
//! vocabulary (always valid YAML, mostly invalid configs), and byte-level mutations of valid
//! configs (often invalid YAML).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use systemg::config::{load_str, DiagKind};

/// xorshift64*: small, deterministic, good enough to pick branches.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// Keys of the schema, plus near misses and junk; every key the schema declares is added
/// (`schema_keys`), so a new setting is fuzzed without being listed here.
static KEYS: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    let mut keys = LISTED_KEYS.to_vec();
    for k in schema_keys() {
        if !keys.contains(&k.as_str()) {
            keys.push(Box::leak(k.into_boxed_str()));
        }
    }
    keys
});

/// Every property name of the config's JSON Schema, sorted.
fn schema_keys() -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                if let Some(serde_json::Value::Object(props)) = m.get("properties") {
                    out.extend(props.keys().cloned());
                }
                m.values().for_each(|x| walk(x, out));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&systemg::config::input_schema::schema(), &mut out);
    out.sort();
    out.dedup();
    out
}

const LISTED_KEYS: &[&str] = &[
    "version",
    "project",
    "services",
    "command",
    "exec",
    "env",
    "vars",
    "file",
    "depends_on",
    "service",
    "condition",
    "restart_policy",
    "backoff",
    "max_restarts",
    "stop_signal",
    "stop_timeout",
    "logs",
    "max_size",
    "max_files",
    "compress",
    "limits",
    "nofile",
    "nproc",
    "memlock",
    "nice",
    "cpu_affinity",
    "cgroup",
    "memory_max",
    "cpu_max",
    "user",
    "group",
    "supplementary_groups",
    "capabilities",
    "isolation",
    "network",
    "mount",
    "pid",
    "cron",
    "timezone",
    "working_dir",
    "tags",
    "health_check",
    "tcp",
    "url",
    "interval",
    "timeout",
    "retries",
    "start_period",
    "start_interval",
    "hooks",
    "on_start",
    "on_exit",
    "on_failure",
    "webhooks",
    "events",
    "deployment",
    "strategy",
    "rolling",
    "blue_green",
    "switch_command",
    "grace_period",
    "spawn",
    "dynamic",
    "depth",
    "children",
    "descendants",
    "total_memory",
    "rate",
    "termination_policy",
    "orphan",
    "secret",
    "state_path",
    "backof",
    "comand",
    "",
    "x",
    "web",
    "db",
    "a",
    "b",
];

/// Scalars: valid values of some field, wrong ones, and awkward ones.
const SCALARS: &[&str] = &[
    "1",
    "\"1\"",
    "2",
    "0",
    "-1",
    "18446744073709551616",
    "1e400",
    "0.5",
    "true",
    "false",
    "null",
    "~",
    "\"\"",
    "5s",
    "5 parsecs",
    "100ms",
    "1.5h",
    "-3s",
    "10M",
    "1G",
    "12 bytes",
    "unlimited",
    "SIGTERM",
    "SIGINT",
    "SIGNOPE",
    "15",
    "99",
    "always",
    "on-failure",
    "never",
    "sometimes",
    "started",
    "healthy",
    "completed",
    "\"*/5 * * * *\"",
    "\"0 0 31 2 *\"",
    "\"61 * * * *\"",
    "\"@daily\"",
    "\"@hourly\"",
    "root",
    "nobody",
    "no-such-user-xyz",
    "CAP_NET_BIND_SERVICE",
    "CAP_NOPE",
    "\"exec sleep 1000\"",
    "\"sleep 1000\"",
    "\"\\u00e9t\\u00e9 \\u2603\"",
    "\"\\t\\n\\r\"",
    "Europe/Paris",
    "Mars/Olympus",
    "private",
    "host",
    "db",
    "web",
    "a",
    "b",
    "\"../../etc/passwd\"",
    "/nonexistent/env",
    "\"a b\"",
    "'single'",
    "\"0x10\"",
    "0o17",
];

/// A random value of at most `depth` levels, emitted in block style at `indent`.
fn value(rng: &mut Rng, depth: usize, indent: usize, out: &mut String) {
    let kind = if depth == 0 { 0 } else { rng.below(10) };
    match kind {
        0..=4 => {
            out.push(' ');
            out.push_str(rng.pick(SCALARS));
            out.push('\n');
        }
        5 => {
            // flow sequence of scalars
            let n = rng.below(4);
            let items: Vec<&str> = (0..n).map(|_| rng.pick(SCALARS)).collect();
            out.push_str(&format!(" [{}]\n", items.join(", ")));
        }
        6 | 7 => {
            out.push('\n');
            for _ in 0..1 + rng.below(3) {
                out.push_str(&" ".repeat(indent));
                out.push('-');
                if rng.chance(40) {
                    // a mapping inside the sequence
                    out.push_str(&format!(" {}:", rng.pick(&KEYS)));
                    value(rng, depth - 1, indent + 4, out);
                } else {
                    value(rng, depth - 1, indent + 2, out);
                }
            }
        }
        _ => {
            out.push('\n');
            mapping(rng, depth - 1, indent, out);
        }
    }
}

fn mapping(rng: &mut Rng, depth: usize, indent: usize, out: &mut String) {
    let mut used = Vec::new();
    for _ in 0..1 + rng.below(5) {
        let mut key = rng.pick(&KEYS);
        if key.is_empty() {
            key = "\"\"";
        }
        // Duplicate keys are a YAML error of their own; keep this generator on valid YAML.
        if used.contains(&key) {
            continue;
        }
        used.push(key);
        out.push_str(&" ".repeat(indent));
        out.push_str(key);
        out.push(':');
        value(rng, depth, indent + 2, out);
    }
}

/// A document shaped like a config: the top-level keys and a services map, with random
/// content below.
fn document(rng: &mut Rng) -> String {
    let mut out = String::new();
    if rng.chance(90) {
        out.push_str(&format!(
            "version: {}\n",
            rng.pick(&["\"1\"", "1", "\"2\"", "x"])
        ));
    }
    if rng.chance(50) {
        out.push_str(&format!("project: {}\n", rng.pick(SCALARS)));
    }
    if rng.chance(30) {
        out.push_str("logs:");
        value(rng, 2, 2, &mut out);
    }
    out.push_str("services:\n");
    let names = ["web", "db", "a", "b", "job", "x-y", "Bad Name", "ünï"];
    let mut used = Vec::new();
    for _ in 0..1 + rng.below(4) {
        let name = rng.pick(&names);
        if used.contains(&name) {
            continue;
        }
        used.push(name);
        out.push_str(&format!("  \"{name}\":\n"));
        if rng.chance(80) {
            out.push_str(&format!(
                "    {}: {}\n",
                rng.pick(&["command", "exec", "cron"]),
                rng.pick(SCALARS)
            ));
        }
        mapping(rng, 3, 4, &mut out);
    }
    out
}

fn path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz.yaml")
}

/// Load `text`; panics (with the case) on a panic inside the parser or on an unpositioned
/// problem in valid YAML.
fn check(text: &str, case: &str) {
    let p = path();
    let result = catch_unwind(AssertUnwindSafe(|| load_str(text, &p)));
    let result = result.unwrap_or_else(|_| panic!("load_str panicked on {case}:\n{text}"));
    let Err(errors) = result else { return };
    let diags = errors.0;
    assert!(
        !diags.is_empty(),
        "an error without a problem on {case}:\n{text}"
    );
    let valid_yaml = !diags.iter().any(|d| d.kind == DiagKind::Syntax);
    for d in &diags {
        assert!(
            !d.message.is_empty() && !d.message.contains('\n'),
            "{case}: bad message {d:?}\n{text}"
        );
        if valid_yaml || d.kind == DiagKind::Syntax {
            assert!(
                d.line > 0 && d.column > 0,
                "{case}: a problem without a position: {d:?}\n{text}"
            );
        }
    }
}

#[test]
fn random_documents_never_panic_and_every_problem_has_a_position() {
    let mut rng = Rng(0x5eed_0001);
    for i in 0..3000 {
        let doc = document(&mut rng);
        check(&doc, &format!("document #{i}"));
    }
}

/// Byte-level damage to a valid config: cut, duplicate, swap, re-indent, insert YAML tokens.
fn mutate(rng: &mut Rng, text: &str) -> String {
    const TOKENS: &[&str] = &[
        ":",
        ": ",
        "- ",
        "-",
        "{",
        "}",
        "[",
        "]",
        ",",
        "&a ",
        "*a",
        "*nope",
        "!!str ",
        "!!int ",
        "!custom ",
        "? ",
        "|",
        ">",
        "#",
        "\t",
        "'",
        "\"",
        "\\",
        "%YAML 1.2\n",
        "---\n",
        "...\n",
        "\u{feff}",
        "\u{0}",
        "\r\n",
        "\u{2028}",
        "<<: *a\n",
        "é",
        "😀",
    ];
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for _ in 0..1 + rng.below(3) {
        if lines.is_empty() {
            break;
        }
        let i = rng.below(lines.len());
        match rng.below(7) {
            0 => {
                lines.remove(i);
            }
            1 => {
                let l = lines[i].clone();
                lines.insert(i, l);
            }
            2 => {
                let j = rng.below(lines.len());
                lines.swap(i, j);
            }
            3 => {
                let l = &mut lines[i];
                if rng.chance(50) {
                    l.insert(0, ' ');
                } else if l.starts_with(' ') {
                    l.remove(0);
                }
            }
            4 => {
                let l = &mut lines[i];
                let mut at = rng.below(l.len() + 1);
                while !l.is_char_boundary(at) {
                    at -= 1;
                }
                l.insert_str(at, rng.pick(TOKENS));
            }
            5 => {
                let l = &mut lines[i];
                let mut at = rng.below(l.len() + 1);
                while !l.is_char_boundary(at) {
                    at -= 1;
                }
                l.truncate(at);
            }
            _ => {
                lines.truncate(i + 1);
            }
        }
    }
    lines.join("\n")
}

#[test]
fn mutated_configs_never_panic_and_valid_yaml_errors_have_positions() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut seeds: Vec<String> = std::fs::read_dir(&dir)
        .expect("examples")
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "yaml"))
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .collect();
    seeds.sort();
    assert!(seeds.len() >= 3, "the example configs went missing");
    let mut rng = Rng(0x5eed_0002);
    for i in 0..3000 {
        let seed = &seeds[i % seeds.len()];
        let text = mutate(&mut rng, seed);
        check(
            &text,
            &format!("mutation #{i} of example {}", i % seeds.len()),
        );
    }
}
