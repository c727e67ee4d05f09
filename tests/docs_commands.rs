//! Every `sysg …` command line in README.md and docs/*.md still parses with the real CLI
//! definition (`Cli::try_parse_from`), so the docs never teach an option that was renamed or
//! removed. Covered: the lines of `sh`/`bash`/`console` code blocks that run `sysg`, and the
//! inline code spans that start with `sysg ` (prose mentions and usage synopses). The YAML
//! blocks are checked by tests/schemas.rs.
//!
//! A synopsis such as `sysg logs [--service S] [--kind stdout\|stderr] [--follow]` is parsed as
//! its required words alone, then with each optional group in turn and each alternative of
//! `a|b` in turn (groups may conflict with each other, e.g. `--follow` and `--until`). Upper-case
//! placeholders (`DUR`, `WHEN`, `SHELL`, ...) are replaced by a sample value of their kind; a
//! mention of a bare option in prose (`sysg restart --config`) is given a sample value.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

use std::path::{Path, PathBuf};

use clap::Parser;
use systemg::cli::args::Cli;

/// One command found in a document.
struct Found {
    at: String,
    text: String,
    /// An inline span (prose): a trailing option may stand without its value.
    prose: bool,
}

fn docs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md")];
    let mut md: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    md.sort();
    files.extend(md);
    files
}

/// Commands of one document.
fn commands(path: &Path) -> Vec<Found> {
    let text = std::fs::read_to_string(path).expect("readable doc");
    let name = path
        .strip_prefix(env!("CARGO_MANIFEST_DIR"))
        .unwrap_or(path)
        .display()
        .to_string();
    let mut out = Vec::new();
    let mut block: Option<String> = None;
    // Prose outside code blocks, with the line each of its characters is on: an inline span
    // may go on over a line break.
    let mut prose = String::new();
    let mut prose_lines = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if let Some(lang) = trimmed.strip_prefix("```") {
            block = match block {
                Some(_) => None,
                None => Some(lang.trim().to_string()),
            };
            prose.push('\n');
            prose_lines.push(i + 1);
            continue;
        }
        match &block {
            Some(lang) if matches!(lang.as_str(), "sh" | "bash" | "console" | "shell") => {
                let cmd = trimmed.trim_start_matches("$ ").trim_start_matches("sudo ");
                if cmd == "sysg" || cmd.starts_with("sysg ") {
                    out.push(Found {
                        at: format!("{name}:{}", i + 1),
                        text: cmd.to_string(),
                        prose: false,
                    });
                }
            }
            Some(_) => {}
            None => {
                for c in line.chars().chain(['\n']) {
                    prose.push(c);
                    prose_lines.push(i + 1);
                }
            }
        }
    }
    let chars: Vec<char> = prose.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '`' {
            i += 1;
            continue;
        }
        let Some(len) = chars[i + 1..].iter().position(|c| *c == '`') else {
            break;
        };
        let raw: String = chars[i + 1..i + 1 + len].iter().collect();
        // A span never goes on over a blank line (the end of a paragraph or a code block).
        if raw.lines().skip(1).any(|l| l.trim().is_empty()) {
            i += 1;
            continue;
        }
        let span = raw.split_whitespace().collect::<Vec<_>>().join(" ");
        // A bare `sysg` names the program, not a command line.
        if span.starts_with("sysg ") {
            out.push(Found {
                at: format!("{name}:{}", prose_lines[i]),
                text: span,
                prose: true,
            });
        }
        i += len + 2;
    }
    out
}

/// Shell words of a command line, up to a comment, pipe, redirection or command separator.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for q in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    cur.push(q);
                }
            }
            '"' => {
                in_word = true;
                while let Some(q) = chars.next() {
                    match q {
                        '"' => break,
                        '\\' => cur.extend(chars.next()),
                        _ => cur.push(q),
                    }
                }
            }
            '\\' => {
                in_word = true;
                cur.extend(chars.next());
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '#' if !in_word => break,
            '|' | '>' | '<' | ';' | '&' => break,
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

/// A sample value for an upper-case placeholder of the docs.
fn sample(word: &str) -> Option<&'static str> {
    Some(match word {
        "DUR" => "2s",
        "WHEN" => "10m",
        "N" | "SECS" => "5",
        "L" | "LEVEL" => "info",
        "SHELL" => "bash",
        "NEW" | "FILE" => "new.yaml",
        "DIR" => "/tmp",
        "S" | "T" | "UNIT" | "JOB" | "NAME" => "web",
        "CMD" | "ARGS" => "true",
        _ => return None,
    })
}

/// The argument lists a synopsis stands for: the required words, then each optional group
/// `[...]` added alone; each `a|b` expanded to each alternative.
fn expansions(text: &str) -> Vec<Vec<String>> {
    // `\|` is how a table cell writes `|`.
    let text = text.replace("\\|", "|");
    let mut required = Vec::new();
    let mut groups: Vec<String> = Vec::new();
    let mut rest = text.as_str();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']').unwrap_or(after.len());
            groups.push(after[..end].to_string());
            rest = after.get(end + 1..).unwrap_or("");
            rest = rest.trim_start_matches('.');
        } else {
            let end = rest.find('[').unwrap_or(rest.len());
            required.push(rest[..end].to_string());
            rest = &rest[end..];
        }
    }
    let base = required.join(" ");
    let mut lines = vec![base.clone()];
    lines.extend(groups.iter().map(|g| format!("{base} {g}")));
    let mut out = Vec::new();
    for line in lines {
        // The shell splitter stops at `|`: alternatives are expanded on the raw words first.
        let mut variants: Vec<Vec<String>> = vec![Vec::new()];
        for word in line.split_whitespace() {
            let word = word.trim_end_matches("..");
            if word.is_empty() || word == "." {
                continue;
            }
            let alts: Vec<&str> = if word.contains('|') && !word.contains('"') {
                word.split('|').collect()
            } else if word.starts_with("--") && word.contains("/--") {
                word.split('/').collect()
            } else {
                vec![word]
            };
            if alts.len() == 1 {
                variants
                    .iter_mut()
                    .for_each(|v| v.push(alts[0].to_string()));
            } else {
                variants = alts
                    .iter()
                    .flat_map(|a| {
                        variants.iter().map(move |v| {
                            let mut v = v.clone();
                            v.push(a.to_string());
                            v
                        })
                    })
                    .collect();
            }
        }
        out.extend(variants);
    }
    out
}

/// The argv of one variant: quoted words kept together, placeholders filled in.
fn argv(words: &[String]) -> Vec<String> {
    shell_words(&words.join(" "))
        .into_iter()
        .map(|w| sample(&w).map_or(w, str::to_string))
        .collect()
}

fn parses(args: &[String]) -> Result<(), String> {
    use clap::error::ErrorKind;
    match Cli::try_parse_from(args) {
        Ok(_) => Ok(()),
        // `--help` and `--version` parse: clap answers them instead of running a command.
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

/// Prose may name a command without its required arguments (`sysg inspect`) or an option
/// without its value (`sysg restart --config`): every word it does give must still be known.
fn mention_parses(args: &[String]) -> Result<(), String> {
    use clap::error::ErrorKind;
    match Cli::try_parse_from(args) {
        Ok(_) => Ok(()),
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::MissingRequiredArgument
                    | ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
            ) =>
        {
            Ok(())
        }
        Err(e) => {
            let trailing_option = args.last().is_some_and(|a| a.starts_with("--"));
            if trailing_option && e.to_string().contains("a value is required for") {
                Ok(())
            } else {
                Err(e.to_string())
            }
        }
    }
}

/// Splits `sysg status / restart -s x / logs -s x -f` into three commands.
fn pieces(text: &str) -> Vec<String> {
    text.split(" / ")
        .flat_map(|p| p.split(" | "))
        .map(|p| {
            if p.starts_with("sysg") {
                p.to_string()
            } else {
                format!("sysg {p}")
            }
        })
        .collect()
}

#[test]
fn every_documented_command_line_parses() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for doc in docs() {
        for found in commands(&doc) {
            // A code block line is run as written; a prose span may be a synopsis.
            let variants: Vec<Vec<String>> = if found.prose {
                pieces(&found.text)
                    .iter()
                    .flat_map(|p| expansions(p))
                    .map(|w| argv(&w))
                    .collect()
            } else {
                vec![argv(std::slice::from_ref(&found.text))]
            };
            for mut args in variants {
                // `sysg --sys ...`: the command is left to the reader.
                if args.last().is_some_and(|a| a == "..." || a == "…") {
                    args.pop();
                    if args.iter().skip(1).all(|a| a.starts_with('-')) {
                        continue;
                    }
                }
                checked += 1;
                let result = if found.prose {
                    mention_parses(&args)
                } else {
                    parses(&args)
                };
                if let Err(e) = result {
                    failures.push(format!(
                        "{}: `{}` (as {:?}): {}",
                        found.at,
                        found.text,
                        args,
                        e.lines().next().unwrap_or_default()
                    ));
                }
            }
        }
    }
    assert!(
        checked > 100,
        "only {checked} command lines found in the docs"
    );
    assert!(
        failures.is_empty(),
        "command lines in the docs that the CLI rejects:\n{}",
        failures.join("\n")
    );
}

/// The checker itself: it rejects what the CLI rejects and expands synopses as described.
#[test]
fn the_checker_catches_a_stale_option() {
    let ok = |t: &str| expansions(t).iter().all(|w| parses(&argv(w)).is_ok());
    assert!(ok(
        "sysg logs [--service S] [--kind stdout\\|stderr] [--follow] [--until WHEN]"
    ));
    assert!(!ok("sysg logs [--service S] [--kind stdout\\|nonsense]"));
    assert!(!ok("sysg status [--no-such-option]"));
    assert!(!ok("sysg stop --service"));
    assert!(!ok("sysg logs --since \"not a time\""));
    assert!(ok("sysg logs --since \"2026-12-05 14:00\" --until 1h"));
    assert_eq!(
        expansions("sysg schema [config|status]").len(),
        3,
        "base, then each alternative"
    );
    assert_eq!(
        shell_words("sysg status --json | jq .x # c"),
        ["sysg", "status", "--json"]
    );
}
