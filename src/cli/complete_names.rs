//! Dynamic shell completion of names: the hidden `sysg __complete services|jobs|tags` prints
//! the names of the config in the current directory (or `--config`), one per line, and the
//! scripts of `sysg completions SHELL` call it for `--service`, `--tag` and `inspect UNIT`.
//! clap's generators only know static values, so their scripts get small per-shell hooks.

use clap_complete::Shell;

use super::args::{CompleteArgs, CompleteKind, Global};
use super::EXIT_OK;

/// `sysg __complete KIND`: the names, sorted, one per line. A missing or broken config
/// completes nothing and says nothing (a completion must never print errors into the
/// command line being edited).
pub fn run(g: &Global, a: &CompleteArgs) -> i32 {
    let path = super::context::config_path(g);
    if let Ok(cfg) = crate::config::load(&path) {
        for name in names(&cfg, a.kind) {
            println!("{name}");
        }
    }
    EXIT_OK
}

/// The names of `kind` in `cfg`, sorted and without duplicates.
pub fn names(cfg: &crate::config::Config, kind: CompleteKind) -> Vec<String> {
    let mut out: Vec<String> = match kind {
        CompleteKind::Services => cfg.services.iter().map(|s| s.name.clone()).collect(),
        CompleteKind::Jobs => cfg
            .services
            .iter()
            .filter(|s| s.cron.is_some())
            .map(|s| s.name.clone())
            .collect(),
        CompleteKind::Tags => cfg
            .services
            .iter()
            .flat_map(|s| s.tags.iter().cloned())
            .collect(),
    };
    out.sort();
    out.dedup();
    out
}

/// `script` (clap's for `shell`) with the hooks that complete names through `sysg __complete`.
pub fn with_name_hooks(shell: Shell, script: &str) -> String {
    match shell {
        Shell::Bash => format!("{script}\n{BASH_HOOK}"),
        Shell::Zsh => zsh(script),
        Shell::Fish => fish(script),
        _ => script.to_string(),
    }
}

/// bash: a wrapper around clap's `_sysg` that answers for the name arguments itself.
const BASH_HOOK: &str = r#"# Names from the config in the current directory (or the one given with -c/--config).
_sysg_names() {
    local cur prev sub i config=()
    cur="${COMP_WORDS[COMP_CWORD]}"
    prev="${COMP_WORDS[COMP_CWORD-1]}"
    sub=
    for ((i = 1; i < COMP_CWORD; i++)); do
        case "${COMP_WORDS[i]}" in
            -c | --config) config=(--config "${COMP_WORDS[i+1]}"); i=$((i + 1)) ;;
            -*) ;;
            *) [ -z "$sub" ] && sub="${COMP_WORDS[i]}" ;;
        esac
    done
    local kind=
    case "$prev" in
        -s | --service) kind=services ;;
        -t | --tag) kind=tags ;;
        *) if [ "$sub" = inspect ] && [[ "$cur" != -* ]]; then kind=services; fi ;;
    esac
    if [ -n "$kind" ]; then
        local IFS=$'\n'
        # shellcheck disable=SC2207
        COMPREPLY=($(compgen -W "$(sysg "${config[@]}" __complete "$kind" 2>/dev/null)" -- "$cur"))
        return 0
    fi
    _sysg "$@"
}
if [[ "${BASH_VERSINFO[0]}" -eq 4 && "${BASH_VERSINFO[1]}" -ge 4 || "${BASH_VERSINFO[0]}" -gt 4 ]]; then
    complete -F _sysg_names -o nosort -o bashdefault -o default sysg
else
    complete -F _sysg_names -o bashdefault -o default sysg
fi
"#;

/// zsh: the name arguments' `_default` action becomes `_sysg_names KIND`.
fn zsh(script: &str) -> String {
    const HELPER: &str = r#"
# Names from the config in the current directory (or the one given with -c/--config).
_sysg_names() {
    local -a names config
    local i=${words[(I)(-c|--config)]}
    (( i > 0 )) && config=(--config "${words[i+1]}")
    names=(${(f)"$(sysg $config __complete $1 2>/dev/null)"})
    compadd -a names
}
"#;
    let mut out = String::new();
    for (i, line) in script.lines().enumerate() {
        let kind = if line.starts_with("'-s+[") || line.starts_with("'--service=[") {
            Some("services")
        } else if line.starts_with("'*-t+[") || line.starts_with("'*--tag=[") {
            Some("tags")
        } else if line.starts_with("':unit -- ") {
            Some("services")
        } else {
            None
        };
        match kind {
            Some(k) if line.contains(":_default'") => {
                out.push_str(&line.replacen(":_default'", &format!(":_sysg_names {k}'"), 1))
            }
            _ => out.push_str(line),
        }
        out.push('\n');
        // After `#compdef sysg`, which must stay the first line.
        if i == 0 {
            out.push_str(HELPER);
        }
    }
    out
}

/// fish: the name options get their candidates from `sysg __complete`; `inspect` its unit.
fn fish(script: &str) -> String {
    const NAMES: &str = "(sysg (__fish_sysg_config) __complete KIND 2>/dev/null)";
    let mut out = String::from(
        "# The -c/--config of the command line being completed, as arguments for sysg.\n\
         function __fish_sysg_config\n    \
         set -l words (commandline -opc)\n    \
         for i in (seq (count $words))\n        \
         if contains -- $words[$i] -c --config\n            \
         and test $i -lt (count $words)\n            \
         echo --config\n            \
         echo $words[(math $i + 1)]\n            \
         return\n        \
         end\n    \
         end\n\
         end\n\n",
    );
    for line in script.lines() {
        out.push_str(line);
        if line.starts_with("complete -c sysg ") && line.ends_with(" -r") {
            if line.contains(" -l service ") {
                out.push_str(&format!(" -f -a \"{}\"", NAMES.replace("KIND", "services")));
            } else if line.contains(" -l tag ") {
                out.push_str(&format!(" -f -a \"{}\"", NAMES.replace("KIND", "tags")));
            }
        }
        out.push('\n');
    }
    out.push_str(&format!(
        "complete -c sysg -n \"__fish_sysg_using_subcommand inspect\" -f -a \"{}\"\n",
        NAMES.replace("KIND", "services")
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn script(shell: Shell) -> String {
        let mut buf = Vec::new();
        clap_complete::generate(
            shell,
            &mut super::super::args::Cli::command(),
            "sysg",
            &mut buf,
        );
        with_name_hooks(shell, &String::from_utf8_lossy(&buf))
    }

    #[test]
    fn every_shell_asks_sysg_for_service_and_tag_names() {
        let bash = script(Shell::Bash);
        assert!(bash.contains("__complete \"$kind\""), "{bash}");
        assert!(bash.contains("complete -F _sysg_names"));
        let zsh = script(Shell::Zsh);
        assert!(zsh.starts_with("#compdef sysg\n"), "{zsh}");
        assert!(zsh.contains("--service=[") && zsh.contains(":_sysg_names services'"));
        assert!(zsh.contains(":_sysg_names tags'"));
        assert!(zsh.contains("':unit -- Service name:_sysg_names services'"));
        assert!(!zsh
            .lines()
            .any(|l| l.starts_with("'--service=[") && l.contains("_default")));
        let fish = script(Shell::Fish);
        let service_lines: Vec<&str> = fish
            .lines()
            .filter(|l| l.contains(" -l service "))
            .collect();
        assert!(!service_lines.is_empty());
        assert!(
            service_lines
                .iter()
                .all(|l| l.contains("__complete services")),
            "{service_lines:#?}"
        );
        assert!(fish.contains("__fish_sysg_using_subcommand inspect\" -f -a"));
    }
}
