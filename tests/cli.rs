//! CLI behaviour of the real binary: validate, exit codes, usage errors.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failed test

mod common;

use common::*;

#[test]
fn validate_ok_and_errors() {
    let p = Project::new("version: \"1\"\nservices:\n  web:\n    command: \"sleep 1\"\n");
    let out = p.sysg(&["validate"]);
    assert_ok(&out, "validate");

    p.write(
        "bad.yaml",
        "version: \"1\"\nservices:\n  web:\n    comand: \"sleep 1\"\n    restart_policy: sometimes\n",
    );
    let out = p.sysg(&["validate", "--config", "bad.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("bad.yaml:4:5"),
        "position of the unknown key: {err}"
    );
    assert!(err.contains("command"), "did-you-mean suggestion: {err}");
    assert!(
        err.contains("bad.yaml:5:"),
        "second problem reported too: {err}"
    );
}

#[test]
fn missing_config_is_a_usage_error() {
    let p = Project::new("version: \"1\"\nservices:\n  web:\n    command: \"sleep 1\"\n");
    let out = p.sysg(&["validate", "--config", "nope.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("nope.yaml"), "{}", stderr(&out));
}

#[test]
fn start_refuses_an_invalid_config_before_anything_runs() {
    let p = Project::new(
        "version: \"1\"\nservices:\n  web:\n    command: \"sleep 1\"\n    depends_on: [db]\n",
    );
    let out = p.sysg(&["start", "--daemonize"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("db"), "{}", stderr(&out));
    assert!(!p.state_dir().join("run/control.sock").exists());
}

#[test]
fn bad_usage_exits_2_and_help_exits_0() {
    let p = Project::new("version: \"1\"\nservices:\n  web:\n    command: \"sleep 1\"\n");
    assert_eq!(p.sysg(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(p.sysg(&["status", "--bogus"]).status.code(), Some(2));
    let help = p.sysg(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(stdout(&help).contains("Exit codes"));
    let bad_level = p.sysg(&["--log-level", "loud", "validate"]);
    assert_eq!(bad_level.status.code(), Some(2));
}

#[test]
fn status_without_supervisor_exits_3() {
    let p = Project::new("version: \"1\"\nservices:\n  web:\n    command: \"sleep 1\"\n");
    let out = p.sysg(&["status"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stdout(&out).contains("web"));
}

#[test]
fn messages_say_what_is_wrong_in_the_users_terms() {
    let p = Project::new(
        "version: \"1\"\nservices:\n  job:\n    command: \"true\"\n    cron:\n      expression: \"61 * * * *\"\n",
    );
    let out = p.sysg(&["validate"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains(r#"minute 61 is out of range 0-59 (field 1 of "61 * * * *")"#),
        "{err}"
    );
    assert!(!err.contains("\\n") && !err.contains("0 61"), "{err}");
    // `list` takes --tag only: its help does not offer --service.
    let help = stdout(&p.sysg(&["list", "--help"]));
    assert!(
        help.contains("--tag") && !help.contains("--service"),
        "{help}"
    );
    p.write(
        "systemg.yaml",
        "version: \"1\"\nservices:\n  web:\n    command: \"sleep 1\"\n",
    );
    let out = p.sysg(&["status", "--stream", "10ms"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("the minimum is 50ms"),
        "{}",
        stderr(&out)
    );
}

/// Completion of names: `sysg __complete` lists the config's names, and the scripts of
/// `sysg completions` use it (bash and fish run for real when installed).
#[test]
fn completions_offer_the_names_of_the_config_here() {
    let p = Project::new(
        "version: \"1\"\nservices:\n  web:\n    command: \"sleep 1\"\n    tags: [front, api]\n  db:\n    command: \"sleep 1\"\n    tags: [api]\n  backup:\n    command: \"true\"\n    cron:\n      expression: \"0 3 * * *\"\n",
    );
    let names = |kind: &str| stdout(&p.sysg(&["__complete", kind]));
    assert_eq!(names("services"), "backup\ndb\nweb\n");
    assert_eq!(names("jobs"), "backup\n");
    assert_eq!(names("tags"), "api\nfront\n");
    // No config (or a broken one): nothing, quietly, exit 0.
    let other = tempfile::tempdir().expect("tempdir");
    let out = p
        .cmd(&["__complete", "services"])
        .current_dir(other.path())
        .output()
        .expect("sysg");
    assert!(out.status.success() && out.stdout.is_empty() && out.stderr.is_empty());
    // The hidden helper is no command to complete.
    let help = stdout(&p.sysg(&["--help"]));
    assert!(!help.contains("__complete"), "{help}");
    let help = stdout(&p.sysg(&["completions", "--help"]));
    for place in [
        "bash-completion/completions/sysg",
        "~/.zfunc/_sysg",
        "fish/completions/sysg.fish",
    ] {
        assert!(
            help.contains(place),
            "completions --help names {place}: {help}"
        );
    }

    let bin_dir = sysg_bin().parent().expect("bin dir").to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let script = p.write("sysg.bash", &stdout(&p.sysg(&["completions", "bash"])));
    if std::process::Command::new("bash")
        .arg("--version")
        .output()
        .is_ok()
    {
        let run = |words: &str| bash_complete(&p.dir, &path, &script, words);
        assert_eq!(run("sysg status --service ''"), "backup db web");
        assert_eq!(run("sysg inspect w"), "web");
        assert_eq!(run("sysg stop -t ''"), "api front");
    }
    let script = p.write("_sysg", &stdout(&p.sysg(&["completions", "zsh"])));
    if std::process::Command::new("zsh")
        .arg("--version")
        .output()
        .is_ok()
    {
        // compadd only works inside a completion: stand in for it to see what is offered.
        let out = std::process::Command::new("zsh")
            .arg("-f")
            .arg("-c")
            .arg(format!(
                "autoload -U compinit; compinit -u -D; source {}; \
                 compadd() {{ print -l -- ${{(P)2}} }}; \
                 words=(sysg status --service ''); _sysg_names services; \
                 words=(sysg stop -t ''); _sysg_names tags",
                script.display()
            ))
            .current_dir(&p.dir)
            .env("PATH", &path)
            .env("HOME", p.home.path())
            .output()
            .expect("zsh");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "backup\ndb\nweb\napi\nfront\n",
            "{out:?}"
        );
    }
    let script = p.write("sysg.fish", &stdout(&p.sysg(&["completions", "fish"])));
    if std::process::Command::new("fish")
        .arg("--version")
        .output()
        .is_ok()
    {
        let out = std::process::Command::new("fish")
            .arg("-c")
            .arg(format!(
                "source {}; complete -C 'sysg logs --service '",
                script.display()
            ))
            .current_dir(&p.dir)
            .env("PATH", &path)
            .output()
            .expect("fish");
        let got: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.split('\t').next().unwrap_or("").to_string())
            .collect();
        assert_eq!(got, ["backup", "db", "web"], "{out:?}");
    }
}

/// Run the bash completion function of `script` in `dir` on the command line `words` (the
/// last word is the one being completed); its candidates, space-separated.
fn bash_complete(
    dir: &std::path::Path,
    path: &str,
    script: &std::path::Path,
    words: &str,
) -> String {
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {}; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
             _sysg_names; echo \"${{COMPREPLY[*]}}\"",
            script.display()
        ))
        .current_dir(dir)
        .env("PATH", path)
        .output()
        .expect("bash");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
