//! Malformed configs must fail with positioned diagnostics, never panic; every example
//! config must pass `sysg validate` (the real binary, host checks included).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::run_bounded;
use systemg::config::{load, load_str, DiagKind};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/malformed")
}

#[test]
fn every_malformed_file_fails_with_a_position() {
    let mut seen = 0;
    for entry in std::fs::read_dir(corpus_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        seen += 1;
        let errs = match load(&path) {
            Ok(c) => panic!("{} unexpectedly valid: {c:?}", path.display()),
            Err(e) => e.0,
        };
        assert!(!errs.is_empty(), "{}", path.display());
        assert!(
            errs.iter().any(|d| d.line > 0 && d.column > 0),
            "{}: no positioned diagnostic in {errs:#?}",
            path.display()
        );
        for d in &errs {
            assert!(!d.message.is_empty());
            assert!(
                !d.message.contains('\n'),
                "{}: multi-line message",
                path.display()
            );
            assert_eq!(d.file, path, "{}", path.display());
        }
    }
    assert!(seen >= 44, "corpus went missing: {seen} files");
}

#[test]
fn wrong_types_are_all_reported() {
    let errs = load(&corpus_dir().join("wrong_types.yaml")).unwrap_err().0;
    let lines: Vec<u64> = errs.iter().map(|d| d.line).collect();
    assert_eq!(lines, [4, 5, 6, 7, 8], "{errs:#?}");
}

#[test]
fn specific_messages() {
    let dir = corpus_dir();
    let first = |name: &str| load(&dir.join(name)).unwrap_err().0.remove(0);
    let errs = load(&dir.join("unknown_top_level.yaml")).unwrap_err().0;
    let d = errs
        .iter()
        .find(|d| d.message.contains("unknown key"))
        .unwrap();
    assert_eq!((d.line, d.column), (2, 1));
    assert!(
        d.message.contains("did you mean `services`?"),
        "{}",
        d.message
    );
    let d = first("tabs.yaml");
    assert_eq!(d.kind, DiagKind::Syntax);
    assert_eq!(d.line, 3);
    let d = first("cycle.yaml");
    assert!(d.message.contains("a -> b -> c -> a"), "{}", d.message);
    let d = first("duplicate_keys.yaml");
    assert_eq!((d.line, d.column), (5, 5));
    let errs = load(&dir.join("bad_cron.yaml")).unwrap_err().0;
    assert_eq!(errs.len(), 3, "{errs:#?}");
}

/// What `start` would trip on (a file or unit name it cannot create, a NUL in a C string)
/// is refused by validation, at the offending value.
#[test]
fn what_start_cannot_run_is_refused_by_validation() {
    let dir = corpus_dir();
    for (file, at, want) in [
        ("dot_service_name.yaml", (5, 3), "must not start with `.`"),
        (
            "hidden_service_name.yaml",
            (3, 3),
            "must not start with `.`",
        ),
        ("nul_in_env.yaml", (7, 12), "NUL character"),
        ("nul_in_exec.yaml", (4, 19), "NUL character"),
        (
            "long_project_name.yaml",
            (2, 10),
            "longer than 64 characters",
        ),
        ("long_unit_name.yaml", (4, 3), "systemd accepts at most 255"),
    ] {
        let errs = load(&dir.join(file)).unwrap_err().0;
        assert_eq!(errs.len(), 1, "{file}: {errs:#?}");
        assert_eq!((errs[0].line, errs[0].column), at, "{file}: {errs:#?}");
        assert!(
            errs[0].message.contains(want),
            "{file}: {}",
            errs[0].message
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("systemg.yaml");
    let svc = |name: &str| format!("version: '1'\nservices:\n  {name}:\n    command: x\n");
    for bad in ["'.'", "'..'", ".x"] {
        let e = load_str(&svc(bad), &p).unwrap_err().0;
        assert!(
            e[0].message.contains("must not start with `.`"),
            "{bad}: {e:?}"
        );
    }
    // 41 characters: a fine service name, too long for a project (its socket path).
    let long = "a".repeat(41);
    let e = load_str(&format!("project: {long}\n{}", svc("web")), &p)
        .unwrap_err()
        .0;
    assert!(e[0].message.contains("longer than 40"), "{e:?}");
    assert!(load_str(&svc(&long), &p).is_ok());
    // An env file with a NUL: its own line and column.
    std::fs::write(tmp.path().join("vars.env"), "A=1\nB=x\0y\n").unwrap();
    let text = format!("{}    env: {{file: vars.env}}\n", svc("web"));
    let e = load_str(&text, &p).unwrap_err().0;
    assert_eq!(e[0].kind, DiagKind::EnvFile);
    assert_eq!((e[0].line, e[0].column), (2, 4), "{e:?}");
}

#[test]
fn binary_junk_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("junk.yaml");
    // Deterministic pseudo-random bytes, including NUL and invalid UTF-8.
    let mut x: u32 = 0x1234_5678;
    let junk: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect();
    std::fs::write(&p, &junk).unwrap();
    let e = load(&p).unwrap_err().0;
    assert!(e[0].line > 0);
    // Valid UTF-8 control characters reach the YAML parser instead.
    let text: String = (0..2000).map(|i| char::from((i % 32) as u8)).collect();
    let e = load_str(&text, &p).unwrap_err().0;
    assert!(!e.is_empty());
}

#[test]
fn huge_file_is_refused_up_front() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("huge.yaml");
    let line = "# padding padding padding padding padding padding padding padding\n";
    let big = line.repeat(10 * 1024 * 1024 / line.len() + 1);
    std::fs::write(&p, &big).unwrap();
    let e = load(&p).unwrap_err().0;
    assert_eq!(e[0].kind, DiagKind::Io);
    assert!(e[0].message.contains("4 MiB"));
    let e = load_str(&big, &p).unwrap_err().0;
    assert!(e[0].message.contains("4 MiB"));
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("deep.yaml");
    let flow = format!(
        "version: '1'\nservices: {}{}\n",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    std::fs::write(&p, &flow).unwrap();
    let e = load(&p).unwrap_err().0;
    assert!(e[0].line > 0, "{e:#?}");
    // Block nesting without the quadratic indentation: `- - - ... x`.
    let block = format!("version: '1'\nservices:\n  {}x\n", "- ".repeat(10_000));
    let e = load_str(&block, &p).unwrap_err().0;
    assert!(e[0].line > 0, "{e:#?}");
    assert!(e[0].message.contains("nested deeper"), "{e:#?}");
}

/// `sysg validate --config examples/NAME` exactly as a user runs it from a checkout: the real
/// binary, a fresh HOME, every host check (users, groups, limits, root). An example that says
/// it needs root (`sudo sysg --sys`) is validated with `--sys`, as its header tells; run
/// without root, it must be refused for needing root and nothing else.
#[test]
fn every_example_validates() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let home = tempfile::tempdir().expect("tempdir");
    // SAFETY: geteuid has no preconditions and cannot fail.
    let is_root = unsafe { libc::geteuid() } == 0;
    let mut seen = 0;
    for entry in std::fs::read_dir(root.join("examples")).unwrap() {
        let path = entry.unwrap().path();
        if !matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            continue;
        }
        seen += 1;
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let rel = format!("examples/{name}");
        let needs_root = std::fs::read_to_string(&path)
            .unwrap()
            .contains("sudo sysg --sys");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sysg"));
        if needs_root {
            cmd.arg("--sys");
        }
        cmd.args(["validate", "--config", &rel])
            .current_dir(root)
            .env("HOME", home.path())
            .env_remove("XDG_STATE_HOME")
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("SYSG_BACKEND");
        let out = run_bounded(cmd, Duration::from_secs(30));
        let err = String::from_utf8_lossy(&out.stderr);
        if needs_root && !is_root {
            assert_eq!(out.status.code(), Some(2), "{rel}: {err}");
            for line in err.lines().filter(|l| l.contains(": error: ")) {
                assert!(line.contains("needs root"), "{rel}: {line}");
            }
            continue;
        }
        assert!(
            out.status.success(),
            "`sysg validate --config {rel}` failed:\n{err}"
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(": ok ("),
            "{rel}: {out:?}"
        );
    }
    assert!(seen >= 4, "only {seen} examples");
    let basic = load(&root.join("examples/basic.yaml")).unwrap();
    assert_eq!(
        systemg::config::start_order(&basic),
        ["db", "migrations", "web"]
    );
}
