//! How a unit's command becomes the argv that is executed, shared by both backends.
//!
//! `command: "..."` is stored as `/bin/sh -c CMD`. When CMD is one simple command made only of
//! plain words (no quoting, expansion, redirection, globbing, assignment, operators, and not a
//! shell builtin or keyword), the shell would do nothing but run those words: they are run
//! directly instead, so the unit's main process is the program itself (its pid, its `comm`,
//! its signals), not a shell. A leading `exec` is dropped. Anything else keeps the shell.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use crate::spec::UnitSpec;

/// Shell words that are builtins or keywords (or builtins that behave differently from the
/// program of the same name): a command starting with one of them always runs through the shell.
const SHELL_WORDS: &[&str] = &[
    ".", ":", "[", "alias", "bg", "break", "case", "cd", "command", "continue", "do", "done",
    "echo", "elif", "else", "esac", "eval", "exec", "exit", "export", "false", "fc", "fg", "fi",
    "for", "getopts", "hash", "if", "jobs", "kill", "local", "printf", "pwd", "read", "readonly",
    "return", "set", "shift", "source", "test", "then", "times", "trap", "true", "type", "ulimit",
    "umask", "unalias", "unset", "until", "wait", "while",
];

/// `/bin/sh -c CMD` where CMD is one simple command made only of plain words: the words, which
/// the shell would run exactly so. `None` for any other argv (an explicit argv is run as given).
pub fn plain_words(argv: &[String]) -> Option<Vec<&str>> {
    let [sh, c, cmd] = argv else { return None };
    if sh != "/bin/sh" || c != "-c" {
        return None;
    }
    let plain = |b: u8| b.is_ascii_alphanumeric() || b" \t-_./,:@%+=".contains(&b);
    if !cmd.bytes().all(plain) {
        return None;
    }
    let mut words: Vec<&str> = cmd.split([' ', '\t']).filter(|w| !w.is_empty()).collect();
    if words.first() == Some(&"exec") {
        words.remove(0);
    }
    let first = *words.first()?;
    if first.contains('=') || first.starts_with('-') || SHELL_WORDS.contains(&first) {
        return None;
    }
    Some(words)
}

/// The argv the rule gives for `argv` (a unit's stored command): the plain words of a plain
/// `/bin/sh -c` command, else `argv` unchanged. Whether the program is then found is the
/// backend's check (`direct`).
pub fn argv_for(argv: &[String]) -> Vec<String> {
    match plain_words(argv) {
        Some(words) => words.into_iter().map(str::to_string).collect(),
        None => argv.to_vec(),
    }
}

/// The search path for the unit's program: the unit's own `PATH`, else the supervisor's, else
/// a default.
pub fn search_list(spec: &UnitSpec) -> OsString {
    spec.env
        .iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| OsString::from(v))
        .or_else(|| std::env::var_os("PATH"))
        .unwrap_or_else(|| OsString::from("/usr/local/bin:/usr/bin:/bin"))
}

/// Where `program` is found on `path`: the first regular, executable file. A program with a
/// `/` is not searched: an absolute one is taken if it is such a file, a relative one is
/// `None` (it is relative to the unit's working directory, which only the shell resolves the
/// same way on both backends).
pub fn search_path(program: &str, path: &OsStr) -> Option<PathBuf> {
    let usable = |p: &std::path::Path| {
        p.metadata().is_ok_and(|m| m.is_file())
            && nix::unistd::access(p, nix::unistd::AccessFlags::X_OK).is_ok()
    };
    if program.contains('/') {
        let p = PathBuf::from(program);
        return (p.is_absolute() && usable(&p)).then_some(p);
    }
    std::env::split_paths(path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(program))
        .find(|p| usable(p))
}

/// A command run without the shell: the executable found and the argv (argv[0] as written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Direct {
    pub path: PathBuf,
    pub argv: Vec<String>,
}

/// How `spec` runs without a shell, when the rule allows it and its program is found;
/// `None` keeps `spec.argv` (the shell then runs the command, and says "not found" itself).
pub fn direct(spec: &UnitSpec) -> Option<Direct> {
    let words = plain_words(&spec.argv)?;
    let path = search_path(words[0], &search_list(spec))?;
    Some(Direct {
        path,
        argv: words.into_iter().map(str::to_string).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(cmd: &str) -> Vec<String> {
        vec!["/bin/sh".into(), "-c".into(), cmd.into()]
    }

    fn words(ws: &[&str]) -> Vec<String> {
        ws.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn plain_commands_become_their_words() {
        let golden: &[(&str, &[&str])] = &[
            ("sleep 1000", &["sleep", "1000"]),
            ("  exec ./srv --port=80\t-v ", &["./srv", "--port=80", "-v"]),
            ("exec sleep 100", &["sleep", "100"]),
            ("/usr/bin/env", &["/usr/bin/env"]),
            (
                "python3 -m http.server 8080",
                &["python3", "-m", "http.server", "8080"],
            ),
            (
                "srv user@host:22 50% a+b a,b",
                &["srv", "user@host:22", "50%", "a+b", "a,b"],
            ),
        ];
        for (cmd, want) in golden {
            assert_eq!(argv_for(&sh(cmd)), words(want), "{cmd:?}");
        }
    }

    #[test]
    fn shell_forms_keep_the_shell() {
        for cmd in [
            "",
            "   ",
            "exec",
            "sleep 1; echo",
            "sleep 1 && echo",
            "cd app && ./server",
            "source venv/bin/activate && gunicorn app",
            "postgres -D data | tee log",
            "echo hi",
            "exit 3",
            "true",
            "cd /tmp",
            "FOO=1 env",
            "exec -a name sleep 1",
            "echo $HOME",
            "srv ${PORT}",
            "cat 'a b'",
            "cat \"a\"",
            "ls *.txt",
            "ls file?",
            "ls [ab]",
            "ls ~",
            "cat < /etc/hostname",
            "srv > out.log",
            "srv 2>&1",
            "sleep 1 &",
            "a | b",
            "a || b",
            "x # comment",
            "sleep\n1",
            "(sleep 1)",
            "{ sleep 1; }",
            "sleep `date`",
            "sleep $(date)",
            "srv a\\ b",
            "café",
        ] {
            assert_eq!(argv_for(&sh(cmd)), sh(cmd), "{cmd:?}");
            assert_eq!(plain_words(&sh(cmd)), None, "{cmd:?}");
        }
        // Only `/bin/sh -c`: an explicit argv is run as given.
        let explicit = words(&["sleep", "1"]);
        assert_eq!(argv_for(&explicit), explicit);
        let bash = words(&["/bin/bash", "-c", "sleep 1"]);
        assert_eq!(argv_for(&bash), bash);
    }

    #[test]
    fn direct_needs_the_program_found() {
        let mut spec = UnitSpec::new("p", "s", sh("sleep 5"));
        let d = direct(&spec).expect("sleep is on PATH");
        assert!(d.path.is_absolute() && d.path.ends_with("sleep"), "{d:?}");
        assert_eq!(d.argv, words(&["sleep", "5"]));
        // The unit's PATH decides.
        spec.env.push(("PATH".into(), "/nonexistent".into()));
        assert_eq!(direct(&spec), None);
        spec.env.clear();
        spec.argv = sh("no-such-program-here 1");
        assert_eq!(direct(&spec), None);
        spec.argv = sh("./relative");
        assert_eq!(direct(&spec), None);
        spec.argv = sh("/bin/sh");
        assert_eq!(
            direct(&spec).map(|d| d.path),
            Some(PathBuf::from("/bin/sh"))
        );
        spec.argv = sh("echo $HOME");
        assert_eq!(direct(&spec), None);
    }

    #[test]
    fn path_search_finds_executables_only() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "").unwrap();
        let exe = dir.path().join("exe");
        std::fs::write(&exe, "").unwrap();
        std::fs::set_permissions(&exe, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let path =
            std::env::join_paths(["", "/nonexistent", dir.path().to_str().unwrap()]).unwrap();
        assert_eq!(search_path("exe", &path), Some(exe.clone()));
        assert_eq!(search_path("sub", &path), None);
        // Without any x bit even root may not execute it.
        assert_eq!(search_path("plain", &path), None);
        assert_eq!(
            search_path(exe.to_str().unwrap(), OsStr::new("")),
            Some(exe)
        );
    }
}
